//! Sockets, for the datagram and stream examples: the blog's URL schemes ([`endpoint`]),
//! binding with the final mode from birth, connecting through the checked file and the
//! full-duplex exchange of a stream with its delivery check ([`sock`]), and what the kernel still
//! holds on the way to a peer ([`queued`], also used for FIFOs).

pub mod endpoint;
pub mod queued;
pub mod sock;
