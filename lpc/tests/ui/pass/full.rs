// Every kind of parameter and return type a service method can have.
#![deny(warnings)]

use serde::{Deserialize, Serialize};
use std::collections::HashMap;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MyInfo {
    pub rounds: u32,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum Verdict {
    Better,
    Worse,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct MyError(pub String);

#[derive(Debug, Serialize, Deserialize)]
pub struct Point {
    pub x: f64,
    pub y: f64,
}

/// An image service.
#[lpc::service]
pub trait Images: Send + Sync {
    /// Adds.
    fn add(&self, a: i32, b: i32) -> i32;
    fn compare(&self, info: &mut MyInfo) -> Verdict;
    fn name(&self) -> String;
    fn ping(&self);
    fn unit(&self) -> ();
    fn blur(&self, image: &[u8], width: u32) -> Vec<u8>;
    fn store(&self, image: Vec<u8>) -> Result<u64, MyError>;
    fn get(&self, key: &str) -> Result<Vec<String>, MyError>;
    fn sum(&self, values: &[f64], origin: &Point) -> f64;
    fn lookup(&self, keys: &[String]) -> HashMap<String, Option<u32>>;
    fn update_two(&self, a: &mut Point, note: &str, b: &mut Vec<u8>) -> bool;
    fn tuple(&self, pair: (u8, String), array: [u16; 4]) -> (u8, String);
    fn borrowed<'a>(&self, text: Option<&'a str>, items: &'a [Option<u8>]) -> usize;
    fn nested(&self, table: std::collections::BTreeMap<u8, Vec<Point>>) -> Option<Box<Point>>;
    fn sixteen(
        &self,
        a1: u8,
        a2: u8,
        a3: u8,
        a4: u8,
        a5: u8,
        a6: u8,
        a7: u8,
        a8: u8,
        a9: u8,
        a10: u8,
        a11: u8,
        a12: u8,
        a13: u8,
        a14: u8,
        a15: u8,
        a16: &mut u8,
    ) -> u32;
    /// A method with a default body and a `mut` parameter binding.
    fn defaulted(&self, mut n: u32) -> u32 {
        n += 1;
        n
    }
    fn r#match(&self, r#type: u8) -> u8;
}

struct Impl;

impl Images for Impl {
    fn add(&self, a: i32, b: i32) -> i32 {
        a + b
    }
    fn compare(&self, info: &mut MyInfo) -> Verdict {
        info.rounds += 1;
        Verdict::Worse
    }
    fn name(&self) -> String {
        String::new()
    }
    fn ping(&self) {}
    fn unit(&self) {}
    fn blur(&self, image: &[u8], _width: u32) -> Vec<u8> {
        image.to_vec()
    }
    fn store(&self, image: Vec<u8>) -> Result<u64, MyError> {
        Ok(image.len() as u64)
    }
    fn get(&self, key: &str) -> Result<Vec<String>, MyError> {
        Err(MyError(key.to_owned()))
    }
    fn sum(&self, values: &[f64], origin: &Point) -> f64 {
        values.iter().sum::<f64>() + origin.x + origin.y
    }
    fn lookup(&self, _keys: &[String]) -> HashMap<String, Option<u32>> {
        HashMap::new()
    }
    fn update_two(&self, a: &mut Point, note: &str, b: &mut Vec<u8>) -> bool {
        a.x += 1.0;
        b.extend_from_slice(note.as_bytes());
        true
    }
    fn tuple(&self, pair: (u8, String), _array: [u16; 4]) -> (u8, String) {
        pair
    }
    fn borrowed<'a>(&self, text: Option<&'a str>, items: &'a [Option<u8>]) -> usize {
        text.map_or(0, str::len) + items.len()
    }
    fn nested(&self, _table: std::collections::BTreeMap<u8, Vec<Point>>) -> Option<Box<Point>> {
        None
    }
    fn sixteen(
        &self,
        a1: u8,
        _a2: u8,
        _a3: u8,
        _a4: u8,
        _a5: u8,
        _a6: u8,
        _a7: u8,
        _a8: u8,
        _a9: u8,
        _a10: u8,
        _a11: u8,
        _a12: u8,
        _a13: u8,
        _a14: u8,
        _a15: u8,
        a16: &mut u8,
    ) -> u32 {
        *a16 = a1;
        0
    }
    fn r#match(&self, r#type: u8) -> u8 {
        r#type
    }
}

fn assert_dispatch<D: lpc::Dispatch>(_: &D) {}

#[allow(dead_code)]
fn client_calls(client: &ImagesClient) -> Result<(), lpc::Error> {
    let _: i32 = client.add(1, 2)?;
    let mut info = MyInfo { rounds: 0 };
    let _: Verdict = client.compare(&mut info)?;
    let _: String = client.name()?;
    client.ping()?;
    client.unit()?;
    let _: Vec<u8> = client.blur(&[1, 2, 3], 3)?;
    let _: Result<u64, MyError> = client.store(vec![1, 2])?;
    let _: Result<Vec<String>, MyError> = client.get("key")?;
    let _: f64 = client.sum(&[1.0], &Point { x: 0.0, y: 0.0 })?;
    let _: HashMap<String, Option<u32>> = client.lookup(&["a".to_owned()])?;
    let mut point = Point { x: 0.0, y: 0.0 };
    let mut bytes = Vec::new();
    let _: bool = client.update_two(&mut point, "note", &mut bytes)?;
    let _: (u8, String) = client.tuple((1, String::new()), [0; 4])?;
    let local = String::from("text");
    let _: usize = client.borrowed(Some(&local), &[None])?;
    let _: Option<Box<Point>> = client.nested(Default::default())?;
    let mut last = 0;
    let _: u32 = client.sixteen(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, &mut last)?;
    let _: u32 = client.defaulted(1)?;
    let _: u8 = client.r#match(1)?;
    let _: ImagesClient = client.with_timeout(std::time::Duration::from_secs(1));
    Ok(())
}

fn main() {
    let server = ImagesServer::new(Impl);
    assert_dispatch(&server);
    let _: &Impl = server.inner();
    let _: &'static lpc::InterfaceDescriptor = &IMAGES_INTERFACE;
}
