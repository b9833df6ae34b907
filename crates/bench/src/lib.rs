//! The benchmark's machinery, used by the `ipc-bench` binary: the measurement loops ([`link`]),
//! what one measurement is ([`plan`]) and how it runs between two processes ([`measure`]), the
//! mechanisms through our code ([`ours`]), through raw libc with the floors ([`raw`]) and
//! through the best other system (iceoryx2, [`peers`]), the
//! standard tools ([`tools`]), statistics ([`stats`]), the derived figures, claims and targets
//! ([`results`]), the report ([`output`]) and a whole run ([`suite`]).

pub mod link;
pub mod measure;
pub mod ours;
pub mod output;
pub mod peers;
pub mod plan;
pub mod raw;
pub mod results;
pub mod stats;
pub mod suite;
pub mod tools;
