//! The ticker client: `ticker-client [--name ticker] [--ticks 3] [--steps 5]` subscribes to
//! the ticker's events, prints the first ticks, then runs a job and prints its progress, which
//! the service sends to this client alone.

use std::time::Duration;

use lpc::{SubscribeOptions, Subscription};
use lpc_examples::ticker::{TickerClient, TickerEventsEvent};

fn main() -> std::process::ExitCode {
    lpc_examples::report(run())
}

fn run() -> Result<(), lpc::Error> {
    let name = lpc_examples::name_arg("ticker");
    let ticks = lpc_examples::number_arg("--ticks", 3);
    let steps = lpc_examples::number_arg("--steps", 5) as u32;
    let ticker = TickerClient::connect(&name)?;
    // Linked to this client's connection: events the service sends to its caller come here.
    let mut events =
        Subscription::<TickerEventsEvent>::for_client(ticker.client(), SubscribeOptions::new())?;
    let mut next = || -> Result<TickerEventsEvent, lpc::Error> {
        match events.recv_timeout(Duration::from_secs(5))? {
            Some(received) => {
                if received.missed > 0 {
                    println!("missed {} events", received.missed);
                }
                Ok(received.event)
            }
            None => Err(lpc::Error::Timeout {
                service: name.clone(),
                method: None,
                after: Duration::from_secs(5),
                phase: lpc::CallPhase::Executing,
            }),
        }
    };
    let mut seen = 0;
    while seen < ticks {
        if let TickerEventsEvent::Tick { .. } = next()? {
            seen += 1;
            println!("tick {seen}");
        }
    }
    let job = ticker.job(steps)?;
    println!("job {job} done");
    let mut done = 0;
    while done < steps {
        if let TickerEventsEvent::Progress {
            job: j,
            done: d,
            of,
        } = next()?
        {
            assert_eq!(j, job);
            println!("progress {d}/{of}");
            done = d;
        }
    }
    Ok(())
}
