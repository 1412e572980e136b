//! The inventory client: `inventory-client [--name inventory]` shows the three outcomes of a
//! call to a method returning `Result<T, E>` — its `Ok`, its application error, an lpc error —
//! and how to let `?` handle both kinds of error.

use std::fmt;

use lpc_examples::inventory::{InventoryClient, StockError};

fn main() -> std::process::ExitCode {
    let inventory = match InventoryClient::connect(&lpc_examples::name_arg("inventory")) {
        Ok(inventory) => inventory,
        Err(e) => return lpc_examples::report(Err(e)),
    };

    // 1. Matching each outcome.
    for (item, count) in [("apples", 3), ("apples", 100), ("pears", 1)] {
        match inventory.take(item, count) {
            Ok(Ok(left)) => println!("take({item:?}, {count}): ok, {left} left"),
            // The handler returned `Err`: the call itself worked.
            Ok(Err(e)) => println!("take({item:?}, {count}): application error: {e}"),
            // lpc could not make the call, or the handler panicked.
            Err(e) => println!("take({item:?}, {count}): lpc error: {e}"),
        }
    }

    // 2. A panic in the handler is an lpc error (`Error::Remote`); the service goes on.
    match inventory.stock("pears") {
        Ok(n) => println!("stock(\"pears\"): {n}"),
        Err(e @ lpc::Error::Remote { .. }) => println!("stock(\"pears\"): lpc error: {e}"),
        Err(e) => println!("stock(\"pears\"): another lpc error: {e}"),
    }
    match inventory.stock("apples") {
        Ok(n) => println!("stock(\"apples\"): {n} (the service still serves)"),
        Err(e) => println!("stock(\"apples\"): lpc error: {e}"),
    }

    // 3. One error type for both, so that `??` does the work.
    match restock_and_take(&inventory) {
        Ok(left) => println!("restock_and_take: ok, {left} pears left"),
        Err(e) => println!("restock_and_take: {e}"),
    }
    match take_too_many(&inventory) {
        Ok(left) => println!("take_too_many: ok, {left} left"),
        Err(e) => println!("take_too_many: {e}"),
    }
    std::process::ExitCode::SUCCESS
}

/// What can go wrong in this client: lpc could not make a call, or the inventory refused.
#[derive(Debug)]
enum ClientError {
    Lpc(lpc::Error),
    Stock(StockError),
}

impl From<lpc::Error> for ClientError {
    fn from(e: lpc::Error) -> Self {
        ClientError::Lpc(e)
    }
}

impl From<StockError> for ClientError {
    fn from(e: StockError) -> Self {
        ClientError::Stock(e)
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Lpc(e) => write!(f, "lpc error: {e}"),
            ClientError::Stock(e) => write!(f, "application error: {e}"),
        }
    }
}

fn restock_and_take(inventory: &InventoryClient) -> Result<u32, ClientError> {
    inventory.restock("pears", 5)?;
    // The first `?` takes the lpc error, the second the application error.
    let left = inventory.take("pears", 2)??;
    Ok(left)
}

fn take_too_many(inventory: &InventoryClient) -> Result<u32, ClientError> {
    let left = inventory.take("pears", 1000)??;
    Ok(left)
}
