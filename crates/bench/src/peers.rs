//! The best peer for shared memory, side by side with our ring: iceoryx2 publish-subscribe
//! (zero-copy, lock-free), two services (`down` towards the peer, `up` back), busy-polling as
//! our spinning ring does, in two modes:
//! - copy (`iox`): the payload is copied into a loaned sample and out of the received one, as
//!   our ring's `send`/`recv` do;
//! - zero-copy (`iox-zc`): the writer stamps the sequence number into a loaned sample in place,
//!   the reader reads it in place, as our ring's `loan`/`take` do.
//!
//! Built only with the `iceoryx2` feature (a large dependency the examples do not need).
//! iceoryx2 keeps its services under `/tmp/iceoryx2` and `/dev/shm` (names unique to the run);
//! they go when both sides' ports and nodes are dropped. What iceoryx2 leaves for later users
//! (its directories under `/tmp/iceoryx2`, a global management file in `/dev/shm`) is removed
//! after each measurement if it did not exist before it and no other node is alive.

use crate::plan::Spec;
use crate::session::{Ctx, Setup, Side, Then};

#[cfg(not(feature = "iceoryx2"))]
pub const BUILT: bool = false;
#[cfg(feature = "iceoryx2")]
pub const BUILT: bool = true;

/// Without iceoryx2 there are no objects to make.
#[cfg(not(feature = "iceoryx2"))]
#[derive(Debug)]
pub struct Objects;

#[cfg(not(feature = "iceoryx2"))]
pub fn setup(ctx: &Ctx<'_>) -> anyhow::Result<Setup<Objects>> {
    anyhow::bail!(
        "{}: ipc-bench was built without iceoryx2 (cargo build --release -p bench --features iceoryx2)",
        ctx.spec.mech
    )
}

#[cfg(not(feature = "iceoryx2"))]
pub fn open<T: Then>(spec: &Spec, _side: Side<'_, Objects>, _then: T) -> anyhow::Result<T::Out> {
    anyhow::bail!("{}: ipc-bench was built without iceoryx2", spec.mech)
}

#[cfg(feature = "iceoryx2")]
pub use with_iceoryx2::{Objects, open, setup};

#[cfg(feature = "iceoryx2")]
mod with_iceoryx2 {
    use super::*;

    use anyhow::{Context, anyhow, ensure};
    use iceoryx2::port::publisher::Publisher;
    use iceoryx2::port::subscriber::Subscriber;
    use iceoryx2::prelude::*;

    use crate::link::{Link, STOP, seq_of};
    use crate::plan::Mech;
    use crate::session::PeerArgs;
    use ipc_common::runtime::wait::Deadline;

    type Pub = Publisher<ipc::Service, [u8], ()>;
    type Sub = Subscriber<ipc::Service, [u8], ()>;

    struct IoxLink {
        // Ports before the node: they are dropped first.
        tx: Pub,
        rx: Sub,
        _services: Vec<
            iceoryx2::service::port_factory::publish_subscribe::PortFactory<ipc::Service, [u8], ()>,
        >,
        _node: Node<ipc::Service>,
        zero_copy: bool,
        buf: Vec<u8>,
        deadline: Deadline,
    }

    fn err(what: &str) -> impl Fn(&dyn std::fmt::Debug) -> anyhow::Error + '_ {
        move |e| anyhow!("iceoryx2: {what}: {e:?}")
    }

    impl IoxLink {
        fn open(
            names: (&str, &str),
            max: usize,
            deadline: Deadline,
            zero_copy: bool,
        ) -> anyhow::Result<Self> {
            let node = NodeBuilder::new()
                .create::<ipc::Service>()
                .map_err(|e| err("create a node")(&e))?;
            let service = |name: &str| {
                let name: ServiceName = name.try_into().map_err(|e| err("service name")(&e))?;
                node.service_builder(&name)
                    .publish_subscribe::<[u8]>()
                    .max_publishers(1)
                    .max_subscribers(1)
                    .history_size(0)
                    .subscriber_max_buffer_size(4)
                    .open_or_create()
                    .map_err(|e| err("open or create the service")(&e))
            };
            let (tx_service, rx_service) = (service(names.0)?, service(names.1)?);
            let tx = tx_service
                .publisher_builder()
                .initial_max_slice_len(max)
                .create()
                .map_err(|e| err("create the publisher")(&e))?;
            let rx = rx_service
                .subscriber_builder()
                .create()
                .map_err(|e| err("create the subscriber")(&e))?;
            Ok(IoxLink {
                tx,
                rx,
                _services: vec![tx_service, rx_service],
                _node: node,
                zero_copy,
                buf: vec![0; max.max(8)],
                deadline,
            })
        }

        fn publish(&mut self, msg: &[u8]) -> anyhow::Result<()> {
            let sample = self
                .tx
                .loan_slice_uninit(msg.len())
                .map_err(|e| err("loan a sample")(&e))?;
            let sample = if self.zero_copy {
                let mut sample = sample;
                for (dst, src) in sample.payload_mut()[..8].iter_mut().zip(&msg[..8]) {
                    dst.write(*src);
                }
                // SAFETY: u8 has no invalid values, and the data segment is shared memory that
                // was zero-filled when created: the bytes not written are initialised.
                unsafe { sample.assume_init() }
            } else {
                sample.write_from_slice(msg)
            };
            sample.send().map_err(|e| err("send")(&e))?;
            Ok(())
        }

        /// Busy-polls for the next sample; copies it out (copy mode) or reads its sequence
        /// number in place (zero-copy). Returns its length.
        fn poll(&mut self) -> anyhow::Result<usize> {
            let mut spins = 0u32;
            loop {
                if let Some(sample) = self.rx.receive().map_err(|e| err("receive")(&e))? {
                    let payload = sample.payload();
                    let n = payload.len();
                    ensure!(n >= 8 && n <= self.buf.len(), "a {n}-byte sample");
                    if self.zero_copy {
                        self.buf[..8].copy_from_slice(&payload[..8]);
                    } else {
                        self.buf[..n].copy_from_slice(payload);
                    }
                    return Ok(n);
                }
                std::hint::spin_loop();
                spins = spins.wrapping_add(1);
                if spins % 1024 == 0 && self.deadline.expired() {
                    return Err(self.deadline.timed_out("a sample from iceoryx2"));
                }
            }
        }
    }

    impl Link for IoxLink {
        const STREAM: bool = false;

        fn send(&mut self, msg: &[u8]) -> anyhow::Result<()> {
            self.publish(msg)
        }

        fn recv(&mut self, len: usize) -> anyhow::Result<&[u8]> {
            let n = self.poll()?;
            ensure!(n == len, "a {n}-byte sample, expected {len}");
            Ok(&self.buf[..n])
        }

        fn recv_any(&mut self, max: usize) -> anyhow::Result<&[u8]> {
            let n = self.poll()?;
            ensure!(n <= max, "a {n}-byte sample, expected at most {max}");
            Ok(&self.buf[..n])
        }

        fn echo(&mut self, len: usize) -> anyhow::Result<bool> {
            let n = self.poll()?;
            ensure!(n == len, "a {n}-byte sample, expected {len}");
            if seq_of(&self.buf[..n]) == STOP {
                return Ok(false);
            }
            let buf = std::mem::take(&mut self.buf);
            let sent = self.publish(&buf[..n]);
            self.buf = buf;
            sent.map(|()| true)
        }
    }

    /// What iceoryx2 leaves behind by design, and whether it was there before we ran.
    struct Leftovers {
        dirs_existed: bool,
        mgmt_before: Vec<std::path::PathBuf>,
    }

    const ROOT: &str = "/tmp/iceoryx2";

    fn mgmt_files() -> Vec<std::path::PathBuf> {
        std::fs::read_dir("/dev/shm")
            .map(|dir| {
                dir.filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| {
                        p.file_name()
                            .and_then(|n| n.to_str())
                            .is_some_and(|n| n.starts_with("iox2_") && n.ends_with(".global_mgmt"))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    impl Leftovers {
        fn snapshot() -> Leftovers {
            Leftovers {
                dirs_existed: std::path::Path::new(ROOT).exists(),
                mgmt_before: mgmt_files(),
            }
        }
    }

    impl Drop for Leftovers {
        fn drop(&mut self) {
            if self.dirs_existed {
                return;
            }
            // Only empty directories go (rmdir), so a live node elsewhere keeps its files; the
            // management file only when no node directory remains.
            for dir in ["nodes", "services"] {
                let _ = std::fs::remove_dir(format!("{ROOT}/{dir}"));
            }
            if std::fs::remove_dir(ROOT).is_ok() {
                for file in mgmt_files() {
                    if !self.mgmt_before.contains(&file) {
                        let _ = std::fs::remove_file(file);
                    }
                }
            }
        }
    }

    fn quiet() {
        // iceoryx2 logs to stderr ("no config file was loaded", a warning): errors only.
        set_log_level(LogLevel::Error);
    }

    fn names(ctx: &Ctx<'_>) -> (String, String) {
        let base = format!("ipc-bench/{}-{}", std::process::id(), ctx.serial);
        (format!("{base}/down"), format!("{base}/up"))
    }

    /// The measuring side's link, its services made before the peer starts, and what removes
    /// iceoryx2's leftovers (dropped last, after the link and the peer).
    pub struct Objects {
        link: IoxLink,
        leftovers: Leftovers,
    }

    impl std::fmt::Debug for Objects {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("iceoryx2 services and their leftovers")
        }
    }

    pub fn setup(ctx: &Ctx<'_>) -> anyhow::Result<Setup<Objects>> {
        let leftovers = Leftovers::snapshot();
        quiet();
        let spec = &ctx.spec;
        let (down, up) = names(ctx);
        let zero_copy = spec.mech == Mech::IoxZc;
        let size = spec.wire_size().max(8);
        let link = IoxLink::open((&down, &up), size, ctx.deadline, zero_copy)?;
        Ok(Setup::new(Objects { link, leftovers }, vec![down, up]))
    }

    pub fn open<T: Then>(spec: &Spec, side: Side<'_, Objects>, then: T) -> anyhow::Result<T::Out> {
        match side {
            Side::Measuring { objects, .. } => {
                let Objects {
                    mut link,
                    leftovers,
                } = objects;
                // The peer's hello: it has its subscriber, so nothing we publish is lost.
                link.recv(8).context("the peer's hello")?;
                let out = then.then(link);
                drop(leftovers);
                out
            }
            Side::Peer { args, deadline } => then.then(peer(args, spec, deadline)?),
        }
    }

    fn peer(args: &PeerArgs, spec: &Spec, deadline: &Deadline) -> anyhow::Result<IoxLink> {
        quiet();
        let (down, up) = (args.addr(0)?, args.addr(1)?);
        let size = spec.wire_size().max(8);
        let link = IoxLink::open((up, down), size, *deadline, spec.mech == Mech::IoxZc)?;
        // Until the measuring side's subscriber is seen, a sample would be dropped: publish the
        // hello until it is (iceoryx2 connects ports on send).
        let hello = [0u8; 8];
        let mut tries = 0u32;
        loop {
            let sample = link
                .tx
                .loan_slice_uninit(8)
                .map_err(|e| err("loan a sample")(&e))?;
            let delivered = sample
                .write_from_slice(&hello)
                .send()
                .map_err(|e| err("send")(&e))?;
            if delivered > 0 {
                break;
            }
            tries += 1;
            if tries % 64 == 0 && deadline.expired() {
                return Err(deadline.timed_out("the measuring side's iceoryx2 subscriber"));
            }
            std::thread::yield_now();
        }
        Ok(link)
    }
}
