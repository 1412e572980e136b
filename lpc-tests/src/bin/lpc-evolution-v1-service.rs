//! `lpc-evolution-v1-service`: serves build 1 of the evolution interfaces
//! (`lpc_evolution_v1::NAMES`) in `$LPC_RUNTIME_DIR`; prints `ready v1 <pid>` once clients can
//! connect to all of them.

fn main() -> Result<(), lpc::Error> {
    lpc_evolution_v1::serve_all()
}
