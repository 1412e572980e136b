//! `lpc-evolution-v2-service`: serves build 2 of the evolution interfaces
//! (`lpc_evolution_v2::NAMES`) in `$LPC_RUNTIME_DIR`; prints `ready v2 <pid>` once clients can
//! connect to all of them.

fn main() -> Result<(), lpc::Error> {
    lpc_evolution_v2::serve_all()
}
