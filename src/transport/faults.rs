//! Fault injection for tests and experiments, off unless configured: drop
//! a share of outbound frames after they are sealed, as a lossy link below
//! TCP never would (TCP retransmits lost packets): it exercises the repair
//! of frames that never arrive. Partitions, black holes and packet loss
//! are made by the kernel in the tests (`tests/kernel_faults.rs`), not
//! here.

use rand::RngExt;

#[derive(Debug)]
pub struct Faults {
    drop: f64,
}

impl Faults {
    pub fn new(drop: f64) -> Faults {
        Faults { drop }
    }

    /// Whether the next frame is to be dropped.
    pub fn should_drop(&self) -> bool {
        self.drop > 0.0 && rand::rng().random_bool(self.drop)
    }
}
