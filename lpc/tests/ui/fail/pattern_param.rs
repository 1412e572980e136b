#[lpc::service]
pub trait Geometry {
    fn length(&self, (x, y): (f64, f64)) -> f64 {
        (x * x + y * y).sqrt()
    }
    fn ignore(&self, _: u32);
}

fn main() {}
