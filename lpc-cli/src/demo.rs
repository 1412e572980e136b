//! `lpc demo`: a calc and a compare service in a child process, called from this one.

use std::error::Error;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use lpc_examples::calc::{CalcClient, CalcServer, Calculator};
use lpc_examples::compare::{Comparator, CompareClient, CompareServer, MyInfo};
use lpc_examples::copydata::{CopyDataServer, Receiver};

type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// The child process, killed if the demo fails before it shuts the child down.
struct ServiceProcess(Child);

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

pub fn run(calls: u32) -> Result<()> {
    let name = format!("lpc-demo-{}", std::process::id());
    let mut child = ServiceProcess(
        Command::new(std::env::current_exe()?)
            .args(["__demo-service", &name])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?,
    );
    let stdout = child
        .0
        .stdout
        .take()
        .ok_or("no stdout from the service process")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // Wait until the service is bound (bounded).
    match rx.recv_timeout(Duration::from_secs(10)) {
        Ok(line) if line.starts_with("ready") => {}
        Ok(line) => return Err(format!("service process said: {line}").into()),
        Err(_) => return Err("the service process did not start within 10 s".into()),
    }
    println!(
        "lpc demo: service process {} serves `{name}-calc` and `{name}-compare`",
        child.0.id()
    );

    let calc = CalcClient::connect(&format!("{name}-calc"))?;
    println!("calc.add(10, 20) = {}", calc.add(10, 20)?);

    let compare = CompareClient::connect(&format!("{name}-compare"))?;
    let mut info = MyInfo {
        red: 3333.0,
        blue: 20.01,
    };
    let sent = info;
    let verdict = compare.compare_image(&mut info)?;
    println!(
        "compare.compare_image(&mut MyInfo {{ red: {:.2}, blue: {:.2} }}) = {verdict:?}; the service wrote back red: {:.2}, blue: {:.2}",
        sent.red, sent.blue, info.red, info.blue
    );

    if calls > 0 {
        for i in 0..10_000 {
            calc.add(i, 1)?;
        }
        let mut samples = Vec::with_capacity(calls as usize);
        let started = Instant::now();
        for i in 0..calls as i32 {
            let t = Instant::now();
            let sum = calc.add(i, 1)?;
            samples.push(t.elapsed());
            if sum != i.wrapping_add(1) {
                return Err(format!("add({i}, 1) returned {sum}").into());
            }
        }
        let total = started.elapsed();
        samples.sort_unstable();
        let pct = |p: f64| samples[((samples.len() - 1) as f64 * p) as usize];
        println!(
            "latency of add over {calls} calls: p50 {:?}, p99 {:?}, max {:?}; {:.0} calls/s",
            pct(0.50),
            pct(0.99),
            samples[samples.len() - 1],
            f64::from(calls) / total.as_secs_f64()
        );
    }

    // Closing the child's stdin asks it to shut its services down.
    drop(child.0.stdin.take());
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.0.try_wait()?.is_none() {
        if Instant::now() >= deadline {
            return Err("the service process did not exit within 10 s".into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    println!("lpc demo: service process shut down");
    Ok(())
}

pub fn service(name: &str) -> Result<()> {
    let calc = lpc::Server::bind(&format!("{name}-calc"))?.spawn(CalcServer::new(Calculator))?;
    let compare = lpc::Server::bind(&format!("{name}-compare"))?
        .spawn(CompareServer::new(Comparator::default()))?;
    // One-way methods, for `lpc call` of a one-way method (its messages print on stdout).
    let copydata = lpc::Server::bind(&format!("{name}-copydata"))?
        .spawn(CopyDataServer::new(Receiver::default()))?;
    println!("ready");
    // Serve until the parent closes our stdin (or dies).
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    calc.shutdown()?;
    compare.shutdown()?;
    copydata.shutdown()?;
    Ok(())
}
