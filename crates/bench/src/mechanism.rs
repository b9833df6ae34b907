//! The one table of mechanisms: each is a [`Mechanism`] whose `setup` creates the kernel objects
//! once, in the measuring process before the peer starts, and whose `open(implementation, side)`
//! makes one side's [`Link`] over them (ours, raw or the peer system's) and hands it on. The
//! sequence around them (spawn, hello, drive, finish) is [`session::run_parent`], the same for
//! every row; [`with_mechanism`] is the table itself.
//!
//! Where both implementations use the same kernel objects, `setup` is shared: the FIFO pair, the
//! queue, the two ring segments, the stream listener. Datagram sockets are bound by each
//! implementation itself (ours through the `dgram` crate's `Receiver`, raw through std), as the
//! hello differs (ours carries the peer's address). The rows only the raw baselines have (the
//! floors, eventfd, the semaphores) are a [`RawOnly`] each.

use std::os::fd::OwnedFd;

use anyhow::Context;
use ipc_common::runtime::cleanup::Cleanup;
use ipc_common::runtime::cli::Mode;
use ipc_common::runtime::wait::Deadline;
use ipc_common::sockets::endpoint::StreamEndpoint;
use ipc_common::sysv::{self, Attached, MsqId};
use nix::unistd::Pid;
use socket2::SockRef;

use crate::link::Link;
use crate::plan::{Imp, Mech, Spec};
use crate::session::{
    self, Ctx, Fifos, Outcome, PeerArgs, Rings, Serve, Setup, Side, Then, Watchdog,
};
use crate::{ours, peers, raw};

/// One mechanism of the table.
pub trait Mechanism {
    /// What `setup` made and the measuring side keeps until the peer is collected.
    type Objects;

    /// Creates the kernel objects the two sides share; the peer finds them by the addresses.
    fn setup(ctx: &Ctx<'_>) -> anyhow::Result<Setup<Self::Objects>>;

    /// One side's link of `spec.imp`, once the hello has crossed, handed to `then`.
    fn open<T: Then>(spec: &Spec, side: Side<'_, Self::Objects>, then: T)
    -> anyhow::Result<T::Out>;
}

/// Something to do with one row of the table, generic over the row's type.
pub trait WithMechanism {
    type Out;
    fn with<M: Mechanism>(self) -> anyhow::Result<Self::Out>;
}

/// The table: which [`Mechanism`] measures `mech`.
pub fn with_mechanism<W: WithMechanism>(mech: Mech, what: W) -> anyhow::Result<W::Out> {
    match mech {
        Mech::Udg | Mech::Udp => what.with::<Dgram>(),
        Mech::Unix | Mech::Tcp => what.with::<Stream>(),
        Mech::Fifo => what.with::<Fifo>(),
        Mech::Mq => what.with::<Queue>(),
        Mech::RedisUnix | Mech::RedisTcp => what.with::<crate::redis::Streams>(),
        Mech::Shm | Mech::ShmSpin | Mech::ShmZc => what.with::<Ring>(),
        Mech::Iox | Mech::IoxZc => what.with::<Iceoryx2>(),
        Mech::Futex | Mech::Spin => what.with::<Floor>(),
        Mech::Eventfd => what.with::<Eventfd>(),
        Mech::Sem => what.with::<Semaphore>(),
    }
}

/// The measuring side of `ctx.spec`: its row's `setup`, then the shared sequence.
pub fn parent(ctx: &Ctx<'_>) -> anyhow::Result<Outcome> {
    struct Parent<'a>(&'a Ctx<'a>);
    impl WithMechanism for Parent<'_> {
        type Out = Outcome;
        fn with<M: Mechanism>(self) -> anyhow::Result<Outcome> {
            let ctx = self.0;
            let setup = M::setup(ctx)?;
            session::run_parent(ctx, setup, |objects, peer, drive| {
                let side = Side::Measuring { ctx, objects, peer };
                M::open(&ctx.spec, side, drive)
            })
        }
    }
    with_mechanism(ctx.spec.mech, Parent(ctx))
}

/// The peer side of `spec`: its row's link, served.
pub fn peer(args: &PeerArgs, spec: &Spec, deadline: &Deadline) -> anyhow::Result<()> {
    struct Peer<'a>(&'a PeerArgs, &'a Spec, &'a Deadline);
    impl WithMechanism for Peer<'_> {
        type Out = ();
        fn with<M: Mechanism>(self) -> anyhow::Result<()> {
            let Peer(args, spec, deadline) = self;
            let serve = Serve {
                spec: *spec,
                window: args.window,
            };
            M::open(spec, Side::Peer { args, deadline }, serve)
        }
    }
    with_mechanism(spec.mech, Peer(args, spec, deadline))
}

/// An implementation this row does not have (see `Mech::imps`).
fn missing(spec: &Spec) -> anyhow::Error {
    anyhow::anyhow!("{} has no {} implementation", spec.mech, spec.imp)
}

/// One implementation's side of a row: `measuring` opens the link over the objects (what it
/// returns beside the link, a watchdog, lives until the peer is collected), `peer` opens the
/// peer's from its arguments; the link then goes to `then`.
fn open_with<O, L: Link, K, T: Then>(
    side: Side<'_, O>,
    then: T,
    measuring: impl FnOnce(&Ctx<'_>, O, Pid) -> anyhow::Result<(L, K)>,
    peer: impl FnOnce(&PeerArgs, &Deadline) -> anyhow::Result<L>,
) -> anyhow::Result<T::Out> {
    match side {
        Side::Measuring {
            ctx,
            objects,
            peer: pid,
        } => {
            let (link, _kept) = measuring(ctx, objects, pid)?;
            then.then(link)
        }
        Side::Peer { args, deadline } => then.then(peer(args, deadline)?),
    }
}

/// Unix datagram and UDP sockets: each implementation binds its own.
#[derive(Debug)]
pub struct Dgram;

#[derive(Debug)]
pub enum DgramObjects {
    Ours(dgram::Receiver),
    Raw(raw::DgramSocket),
}

impl Mechanism for Dgram {
    type Objects = DgramObjects;

    fn setup(ctx: &Ctx<'_>) -> anyhow::Result<Setup<DgramObjects>> {
        Ok(match ctx.spec.imp {
            Imp::Ours => ours::dgram_setup(ctx)?.map(DgramObjects::Ours),
            Imp::Raw => raw::dgram_setup(ctx)?.map(DgramObjects::Raw),
            Imp::Peer => return Err(missing(&ctx.spec)),
        })
    }

    fn open<T: Then>(spec: &Spec, side: Side<'_, DgramObjects>, then: T) -> anyhow::Result<T::Out> {
        let mismatch = || anyhow::anyhow!("{}: set up for another implementation", spec.mech);
        match spec.imp {
            Imp::Ours => open_with(
                side,
                then,
                |ctx, objects, _| match objects {
                    DgramObjects::Ours(rx) => Ok((ours::dgram_measuring(ctx, rx)?, ())),
                    DgramObjects::Raw(_) => Err(mismatch()),
                },
                |args, deadline| ours::dgram_peer(args, spec, deadline),
            ),
            Imp::Raw => open_with(
                side,
                then,
                |ctx, objects, _| match objects {
                    DgramObjects::Raw(socket) => Ok((raw::dgram_measuring(ctx, socket)?, ())),
                    DgramObjects::Ours(_) => Err(mismatch()),
                },
                |args, deadline| raw::dgram_peer(args, spec, deadline),
            ),
            Imp::Peer => Err(missing(spec)),
        }
    }
}

/// Unix stream sockets and TCP: one listener, bound by the `stream` crate (socket options set
/// before the peer connects, so that the accepted socket inherits them); ours accepts through
/// it, raw with `accept(2)` on its descriptor.
#[derive(Debug)]
pub struct Stream;

impl Mechanism for Stream {
    type Objects = stream::Listener;

    fn setup(ctx: &Ctx<'_>) -> anyhow::Result<Setup<stream::Listener>> {
        let endpoint = match ctx.spec.mech {
            Mech::Unix => StreamEndpoint::Unix(ctx.path("s.sock")),
            _ => StreamEndpoint::Tcp(([127, 0, 0, 1], 0).into()),
        };
        let listener = stream::Listener::bind(&endpoint, Mode(session::MODE))?;
        ctx.spec
            .tune_stream(SockRef::from(listener.socket()), false)?;
        let addrs = vec![listener.url().to_string()];
        Ok(Setup::new(listener, addrs))
    }

    fn open<T: Then>(
        spec: &Spec,
        side: Side<'_, stream::Listener>,
        then: T,
    ) -> anyhow::Result<T::Out> {
        match spec.imp {
            Imp::Ours => open_with(
                side,
                then,
                |ctx, listener, _| Ok((ours::stream_measuring(ctx, &listener)?, listener)),
                |args, deadline| ours::stream_peer(args, spec, deadline),
            ),
            Imp::Raw => open_with(
                side,
                then,
                |ctx, listener, _| Ok((raw::stream_measuring(ctx, listener.socket())?, listener)),
                |args, deadline| raw::stream_peer(args, spec, deadline),
            ),
            Imp::Peer => Err(missing(spec)),
        }
    }
}

/// Two FIFOs, `down` and `up` ([`session::private_fifos`]).
#[derive(Debug)]
pub struct Fifo;

impl Mechanism for Fifo {
    type Objects = Fifos;

    fn setup(ctx: &Ctx<'_>) -> anyhow::Result<Setup<Fifos>> {
        session::private_fifos(ctx)
    }

    fn open<T: Then>(spec: &Spec, side: Side<'_, Fifos>, then: T) -> anyhow::Result<T::Out> {
        match spec.imp {
            Imp::Ours => open_with(
                side,
                then,
                |ctx, fifos, _| Ok((ours::fifo_measuring(ctx, fifos)?, ())),
                |args, deadline| ours::fifo_peer(args, spec, deadline),
            ),
            Imp::Raw => open_with(side, then, raw::fifo_measuring, |args, _| {
                raw::fifo_peer(args, spec)
            }),
            Imp::Peer => Err(missing(spec)),
        }
    }
}

/// A private SysV message queue, type 1 towards the peer and type 2 back. Both implementations
/// block in the kernel; the measuring side's watchdog kills a stuck peer and removes the queue,
/// which ends a blocked call.
#[derive(Debug)]
pub struct Queue;

impl Mechanism for Queue {
    type Objects = (MsqId, Cleanup);

    fn setup(_ctx: &Ctx<'_>) -> anyhow::Result<Setup<(MsqId, Cleanup)>> {
        let (id, guard) = session::private_queue()?;
        Ok(Setup::new((id, guard), vec![id.0.to_string()]))
    }

    fn open<T: Then>(
        spec: &Spec,
        side: Side<'_, (MsqId, Cleanup)>,
        then: T,
    ) -> anyhow::Result<T::Out> {
        let watchdog = |ctx: &Ctx<'_>, id: MsqId, peer: Pid| {
            Watchdog::for_peer(ctx.deadline, peer, move || {
                let _ = sysv::msg_remove(id);
            })
        };
        let queue = |args: &PeerArgs| -> anyhow::Result<MsqId> {
            Ok(MsqId(args.addr(0)?.parse().context("--addr: a queue id")?))
        };
        match spec.imp {
            Imp::Ours => open_with(
                side,
                then,
                |ctx, (id, guard), peer| {
                    let watchdog = watchdog(ctx, id, peer);
                    Ok((ours::mq_link(id, true, spec)?, (watchdog, guard)))
                },
                |args, _| ours::mq_link(queue(args)?, false, spec),
            ),
            Imp::Raw => open_with(
                side,
                then,
                |ctx, (id, guard), peer| {
                    let watchdog = watchdog(ctx, id, peer);
                    Ok((raw::mq_link(id, true, spec)?, (watchdog, guard)))
                },
                |args, _| raw::mq_link(queue(args)?, false, spec),
            ),
            Imp::Peer => Err(missing(spec)),
        }
    }
}

/// Two private segments of one ring each ([`session::private_rings`]): ours through
/// `ipc_ring`, raw with the ring's header words and fixed slots.
#[derive(Debug)]
pub struct Ring;

impl Mechanism for Ring {
    type Objects = Rings;

    fn setup(ctx: &Ctx<'_>) -> anyhow::Result<Setup<Rings>> {
        session::private_rings(&ctx.spec)
    }

    fn open<T: Then>(spec: &Spec, side: Side<'_, Rings>, then: T) -> anyhow::Result<T::Out> {
        match spec.imp {
            Imp::Ours => open_with(
                side,
                then,
                |ctx, rings, _| {
                    let link =
                        rings.open(|both| ours::shm_link(both, true, spec, &ctx.deadline))?;
                    Ok((link, ()))
                },
                |args, deadline| {
                    ours::shm_link(session::attach_rings(args)?, false, spec, deadline)
                },
            ),
            Imp::Raw => open_with(
                side,
                then,
                |ctx, rings, _| {
                    let link = rings.open(|both| raw::shm_link(both, true, spec, &ctx.deadline))?;
                    Ok((link, ()))
                },
                |args, deadline| raw::shm_link(session::attach_rings(args)?, false, spec, deadline),
            ),
            Imp::Peer => Err(missing(spec)),
        }
    }
}

/// A row only the raw baselines have (the floors and the other wake-ups): its objects and its
/// two sides, without an implementation to choose.
pub trait RawOnly {
    type Objects;
    type Link: Link;
    /// What the measuring side keeps beside its link (a watchdog, a guard).
    type Kept;
    fn setup() -> anyhow::Result<Setup<Self::Objects>>;
    fn measuring(
        ctx: &Ctx<'_>,
        objects: Self::Objects,
        peer: Pid,
    ) -> anyhow::Result<(Self::Link, Self::Kept)>;
    fn peer(args: &PeerArgs, spec: &Spec, deadline: &Deadline) -> anyhow::Result<Self::Link>;
}

impl<R: RawOnly> Mechanism for R {
    type Objects = R::Objects;

    fn setup(_ctx: &Ctx<'_>) -> anyhow::Result<Setup<R::Objects>> {
        R::setup()
    }

    fn open<T: Then>(spec: &Spec, side: Side<'_, R::Objects>, then: T) -> anyhow::Result<T::Out> {
        match spec.imp {
            Imp::Raw => open_with(side, then, R::measuring, |args, deadline| {
                R::peer(args, spec, deadline)
            }),
            _ => Err(missing(spec)),
        }
    }
}

/// The floors: one shared word in a private segment.
#[derive(Debug)]
pub struct Floor;

impl RawOnly for Floor {
    type Objects = (Attached, Cleanup);
    type Link = raw::Floor;
    type Kept = ();

    fn setup() -> anyhow::Result<Setup<Self::Objects>> {
        raw::floor_setup()
    }

    fn measuring(
        ctx: &Ctx<'_>,
        segment: Self::Objects,
        _: Pid,
    ) -> anyhow::Result<(raw::Floor, ())> {
        Ok((raw::floor_measuring(ctx, segment)?, ()))
    }

    fn peer(args: &PeerArgs, spec: &Spec, deadline: &Deadline) -> anyhow::Result<raw::Floor> {
        raw::floor_peer(args, spec, deadline)
    }
}

/// An eventfd each way, inherited by the peer.
#[derive(Debug)]
pub struct Eventfd;

impl RawOnly for Eventfd {
    type Objects = (OwnedFd, OwnedFd);
    type Link = raw::Eventfds;
    type Kept = Watchdog;

    fn setup() -> anyhow::Result<Setup<Self::Objects>> {
        raw::eventfd_setup()
    }

    fn measuring(
        ctx: &Ctx<'_>,
        eventfds: Self::Objects,
        peer: Pid,
    ) -> anyhow::Result<(raw::Eventfds, Watchdog)> {
        raw::eventfd_measuring(ctx, eventfds, peer)
    }

    fn peer(args: &PeerArgs, _: &Spec, _: &Deadline) -> anyhow::Result<raw::Eventfds> {
        raw::eventfd_peer(args)
    }
}

/// A set of two SysV semaphores, one each way.
#[derive(Debug)]
pub struct Semaphore;

impl RawOnly for Semaphore {
    type Objects = (sysv::SemId, Cleanup);
    type Link = raw::Sems;
    type Kept = (Watchdog, Cleanup);

    fn setup() -> anyhow::Result<Setup<Self::Objects>> {
        raw::sem_setup()
    }

    fn measuring(
        ctx: &Ctx<'_>,
        set: Self::Objects,
        peer: Pid,
    ) -> anyhow::Result<(raw::Sems, (Watchdog, Cleanup))> {
        raw::sem_measuring(ctx, set, peer)
    }

    fn peer(args: &PeerArgs, _: &Spec, _: &Deadline) -> anyhow::Result<raw::Sems> {
        raw::sem_peer(args)
    }
}

/// iceoryx2 publish-subscribe (the peer system only): its services are its own objects.
#[derive(Debug)]
pub struct Iceoryx2;

impl Mechanism for Iceoryx2 {
    type Objects = peers::Objects;

    fn setup(ctx: &Ctx<'_>) -> anyhow::Result<Setup<Self::Objects>> {
        peers::setup(ctx)
    }

    fn open<T: Then>(
        spec: &Spec,
        side: Side<'_, Self::Objects>,
        then: T,
    ) -> anyhow::Result<T::Out> {
        match spec.imp {
            Imp::Peer => peers::open(spec, side, then),
            _ => Err(missing(spec)),
        }
    }
}
