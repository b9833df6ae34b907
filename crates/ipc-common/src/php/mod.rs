//! PHP's formats, byte for byte, so that PHP can sit at either end of our pipes:
//! - [`Value`] with [`serialize`]/[`unserialize`] (what `serialize()`, `shm_put_var` and
//!   `msg_send` write: scalars, arrays, objects, enums, references), [`Value::echo`] (what
//!   `echo $value;` prints) and [`Value::to_json`] (what `json_encode($value)` prints);
//! - [`sysvshm`]: the variable store PHP's `shm_attach`/`shm_put_var`/`shm_get_var` keep in a
//!   SysV segment;
//! - [`sysvsem`]: the three-semaphore lock of PHP's `sem_get`/`sem_acquire`/`sem_release`.
//!
//! Everything here parses untrusted bytes: errors, never panics, and no allocation larger than the
//! input justifies. See `shared/docs/php-formats.md` for the formats.

mod float;
pub mod options;
mod print;
mod serialize;
pub mod sysvsem;
pub mod sysvshm;
mod unserialize;

#[cfg(test)]
mod tests;

pub use print::{JSON_MAX_DEPTH, JsonFlags, PrintError};
pub use serialize::{ArrayKey, Value, Visibility, serialize, unmangle};
pub use unserialize::{MAX_DEPTH, UnserializeError, unserialize};
