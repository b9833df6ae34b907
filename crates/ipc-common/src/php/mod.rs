//! PHP's formats, byte for byte, so that PHP can sit at either end of our pipes:
//! - [`Value`] with [`serialize`]/[`unserialize`] (what `serialize()`, `shm_put_var` and
//!   `msg_send` write), [`Value::echo`] (what `echo $value;` prints) and [`Value::to_json`];
//! - [`sysvshm`]: the variable store PHP's `shm_attach`/`shm_put_var`/`shm_get_var` keep in a
//!   SysV segment;
//! - [`sysvsem`]: the three-semaphore lock of PHP's `sem_get`/`sem_acquire`/`sem_release`.
//!
//! Everything here parses untrusted bytes: errors, never panics, and no allocation larger than the
//! input justifies. See `shared/docs/php-formats.md` for the formats.

mod float;
mod serialize;
pub mod sysvsem;
pub mod sysvshm;

pub use serialize::{ArrayKey, UnserializeError, Value, serialize, unserialize};
