//! The runtime a shard (or a control thread) runs on: io_uring with the cheapest setup flags
//! measured here (research/stack.md), io_uring without them on kernels that refuse them, else
//! epoll.

use std::io;

use monoio::time::TimeDriver;
use monoio::{FusionRuntime, IoUringDriver, LegacyDriver, RuntimeBuilder};
use tracing::warn;

use crate::config::Driver;

/// io_uring submission queue entries per shard.
const RING_ENTRIES: u32 = 1024;

pub(crate) type Fusion = FusionRuntime<TimeDriver<IoUringDriver>, TimeDriver<LegacyDriver>>;

/// Build the shard's runtime: io_uring with the cheapest setup flags measured here
/// (research/stack.md), io_uring without them on kernels that refuse them, else epoll.
pub(crate) fn build_runtime(choice: Driver) -> io::Result<(Fusion, &'static str)> {
    let legacy = || -> io::Result<(Fusion, &'static str)> {
        let rt = RuntimeBuilder::<LegacyDriver>::new()
            .enable_timer()
            .build()?;
        Ok((rt.into(), "legacy (epoll)"))
    };
    let want_uring = match choice {
        Driver::Legacy => false,
        Driver::IoUring => true,
        Driver::Auto => monoio::utils::detect_uring(),
    };
    if !want_uring {
        if choice == Driver::Auto {
            warn!("io_uring is unavailable here; falling back to the legacy (epoll) driver");
        }
        return legacy();
    }
    let mut flagged = io_uring::IoUring::builder();
    flagged
        .setup_coop_taskrun()
        .setup_single_issuer()
        .setup_defer_taskrun();
    let with_flags = RuntimeBuilder::<IoUringDriver>::new()
        .with_entries(RING_ENTRIES)
        .uring_builder(flagged)
        .enable_timer()
        .build();
    match with_flags {
        Ok(rt) => return Ok((rt.into(), "io_uring")),
        Err(e) => warn!(error = %e, "io_uring setup flags refused; retrying without them"),
    }
    match RuntimeBuilder::<IoUringDriver>::new()
        .with_entries(RING_ENTRIES)
        .enable_timer()
        .build()
    {
        Ok(rt) => Ok((rt.into(), "io_uring (no setup flags)")),
        Err(e) if choice == Driver::Auto => {
            warn!(error = %e, "io_uring failed; falling back to the legacy (epoll) driver");
            legacy()
        }
        Err(e) => Err(e),
    }
}
