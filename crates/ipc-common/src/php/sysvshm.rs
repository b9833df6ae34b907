//! The variable store PHP's sysvshm extension keeps in a SysV segment, on an in-memory image of
//! the segment (read with `sysv::Attached::snapshot`, written back with `Attached::write`).
//!
//! ```text
//! header (40 bytes): magic "PHP_SM\0" (8) | start i64 (=40) | end i64 | free i64 | total i64
//! record (8-aligned): key i64 | length i64 | next i64 | serialize($value) | padding to `next`
//! ```
//!
//! PHP trusts the header; we do not: every offset and length is checked against the real segment
//! before use, so a corrupted or hostile segment is an error, never a read out of bounds or a
//! loop.

use std::fmt;
use std::ops::Range;

/// What `shm_attach` writes first; PHP compares (and writes) only these 7 bytes.
pub const MAGIC: &[u8; 7] = b"PHP_SM\0";
/// Header size, and where the first record starts.
pub const HEADER_LEN: usize = 40;
const RECORD_HEADER_LEN: usize = 24;

/// The smallest segment `shm_attach` accepts.
pub const MIN_SEGMENT: usize = HEADER_LEN;

/// Size of the record holding `len` serialized bytes: PHP's
/// `((len + sizeof(sysvshm_chunk) - 1) / 8) * 8 + 8`, which is always 8 bytes more than needed.
pub fn record_size(len: usize) -> usize {
    (len + 31) / 8 * 8 + 8
}

/// The largest string `shm_put_var` can store in a fresh segment of `total` bytes (943 for 1024).
pub fn max_string_len(total: usize) -> usize {
    let free = total.saturating_sub(HEADER_LEN);
    // A record of `free` bytes holds up to free - 32 serialized bytes; `s:N:"...";` adds 6 bytes
    // plus the digits of N.
    let max_serialized = (free / 8 * 8).saturating_sub(32);
    (0..=max_serialized)
        .rev()
        .find(|&n| n + 6 + n.to_string().len() <= max_serialized)
        .unwrap_or(0)
}

/// The four header fields after the magic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub start: i64,
    pub end: i64,
    pub free: i64,
    pub total: i64,
}

/// Why a segment image is not a usable variable store, or a put does not fit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreError {
    /// The first 7 bytes are not `PHP_SM\0`: nobody has attached with PHP's layout yet.
    NotInitialized,
    /// A header field or record points outside the segment or is inconsistent.
    Corrupt(String),
    /// The value does not fit; `needed` and `free` in bytes.
    NoSpace { needed: usize, free: usize },
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::NotInitialized => {
                f.write_str("the segment holds no PHP variable store (no PHP_SM header)")
            }
            StoreError::Corrupt(why) => write!(f, "corrupt PHP variable store: {why}"),
            StoreError::NoSpace { needed, free } => write!(
                f,
                "not enough shared memory left: the value needs {needed} bytes, {free} are free"
            ),
        }
    }
}

impl std::error::Error for StoreError {}

fn read_i64(image: &[u8], at: usize) -> i64 {
    i64::from_le_bytes(image[at..at + 8].try_into().expect("8 bytes"))
}

fn write_i64(image: &mut [u8], at: usize, value: i64) {
    image[at..at + 8].copy_from_slice(&value.to_le_bytes());
}

fn corrupt<T>(why: String) -> Result<T, StoreError> {
    Err(StoreError::Corrupt(why))
}

/// Whether the image starts with PHP's magic.
pub fn is_initialized(image: &[u8]) -> bool {
    image.starts_with(MAGIC)
}

/// Writes a fresh header as `shm_attach` does for a segment without one: start = end = 40,
/// free = total - 40. `total` is the size the attaching process asked for, which must not exceed
/// the segment (PHP would trust it; we clamp it to the image).
pub fn initialize(image: &mut [u8], total: usize) -> Result<(), StoreError> {
    let segment_len = image.len();
    initialize_prefix(image, total, segment_len)
}

/// [`initialize`] on `image`, the first bytes of a segment of `segment_len` bytes (at least the
/// header): a store of gigabytes is laid out without copying it.
pub fn initialize_prefix(
    image: &mut [u8],
    total: usize,
    segment_len: usize,
) -> Result<(), StoreError> {
    if image.len() < MIN_SEGMENT || segment_len < MIN_SEGMENT {
        return corrupt(format!(
            "a segment of {} bytes cannot hold the 40-byte header",
            segment_len.min(image.len())
        ));
    }
    let total = total.min(segment_len) as i64;
    image[..MAGIC.len()].copy_from_slice(MAGIC);
    write_i64(image, 8, HEADER_LEN as i64);
    write_i64(image, 16, HEADER_LEN as i64);
    write_i64(image, 24, total - HEADER_LEN as i64);
    write_i64(image, 32, total);
    Ok(())
}

/// The header, checked: `40 <= start <= end <= total <= segment`, `free == total - end`.
pub fn header(image: &[u8]) -> Result<Header, StoreError> {
    header_of(image, image.len())
}

/// [`header`] of a segment of `segment_len` bytes whose first bytes are `image`: the records
/// must lie within `image` ([`prefix_len`] says how much to copy), `total` within the segment.
pub fn header_of(image: &[u8], segment_len: usize) -> Result<Header, StoreError> {
    if image.len() < HEADER_LEN {
        return corrupt(format!(
            "a segment of {} bytes cannot hold the 40-byte header",
            image.len()
        ));
    }
    if !is_initialized(image) {
        return Err(StoreError::NotInitialized);
    }
    let header = Header {
        start: read_i64(image, 8),
        end: read_i64(image, 16),
        free: read_i64(image, 24),
        total: read_i64(image, 32),
    };
    let len = segment_len as i64;
    let Header {
        start,
        end,
        free,
        total,
    } = header;
    if !(HEADER_LEN as i64 <= start && start <= end && end <= total && total <= len) {
        return corrupt(format!(
            "header start={start} end={end} total={total} does not fit a {len}-byte segment"
        ));
    }
    if free != total - end {
        return corrupt(format!("header free={free} but total-end={}", total - end));
    }
    if end as u64 > image.len() as u64 {
        return corrupt(format!(
            "header end={end} lies past the {} bytes copied",
            image.len()
        ));
    }
    Ok(header)
}

/// How many bytes of a segment of `segment_len` bytes, whose first 40 are `head`, an operation
/// needs: the used part of the store (up to `end`) and `extra` bytes after it (the record a put
/// appends), never more than the store. A segment without a store needs `HEADER_LEN + extra`.
/// A bad header asks for the header only; the operation then reports it.
pub fn prefix_len(head: &[u8], segment_len: usize, extra: usize) -> usize {
    let wanted = match header_fields(head) {
        Some(Header { end, total, .. }) if 0 <= end && end <= total => {
            (end as u64).saturating_add(extra as u64).min(total as u64)
        }
        Some(_) => HEADER_LEN as u64,
        None => (HEADER_LEN as u64).saturating_add(extra as u64),
    };
    usize::try_from(wanted)
        .unwrap_or(usize::MAX)
        .clamp(HEADER_LEN.min(segment_len), segment_len)
}

/// The header fields as they are, unchecked; `None` without PHP's magic.
fn header_fields(head: &[u8]) -> Option<Header> {
    (head.len() >= HEADER_LEN && is_initialized(head)).then(|| Header {
        start: read_i64(head, 8),
        end: read_i64(head, 16),
        free: read_i64(head, 24),
        total: read_i64(head, 32),
    })
}

/// One variable's record: where it starts, its key, and where its serialized bytes are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub offset: usize,
    pub key: i64,
    pub data: Range<usize>,
    pub size: usize,
}

/// Every record from `start` to `end`, each checked to lie within `end`.
pub fn records(image: &[u8]) -> Result<Vec<Record>, StoreError> {
    records_of(image, image.len())
}

/// [`records`] of a segment of `segment_len` bytes whose first bytes are `image`.
pub fn records_of(image: &[u8], segment_len: usize) -> Result<Vec<Record>, StoreError> {
    let header = header_of(image, segment_len)?;
    let end = header.end as usize;
    let mut pos = header.start as usize;
    let mut found = Vec::new();
    while pos < end {
        if pos + RECORD_HEADER_LEN > end {
            return corrupt(format!("record at {pos} runs past end={end}"));
        }
        let key = read_i64(image, pos);
        let length = read_i64(image, pos + 8);
        let next = read_i64(image, pos + 16);
        if next <= 0 || next as u64 > (end - pos) as u64 {
            return corrupt(format!(
                "record at {pos} has size {next}, outside end={end}"
            ));
        }
        if length < 0 || length as u64 > (next as u64).saturating_sub(RECORD_HEADER_LEN as u64) {
            return corrupt(format!(
                "record at {pos} claims {length} bytes in a {next}-byte record"
            ));
        }
        let data_start = pos + RECORD_HEADER_LEN;
        found.push(Record {
            offset: pos,
            key,
            data: data_start..data_start + length as usize,
            size: next as usize,
        });
        pos += next as usize;
    }
    Ok(found)
}

/// `shm_get_var`: the serialized bytes of variable `key`, if present (first match wins, as in
/// PHP).
pub fn get(image: &[u8], key: i64) -> Result<Option<&[u8]>, StoreError> {
    get_of(image, image.len(), key)
}

/// [`get`] on the first bytes of a segment of `segment_len` bytes.
pub fn get_of(image: &[u8], segment_len: usize, key: i64) -> Result<Option<&[u8]>, StoreError> {
    Ok(records_of(image, segment_len)?
        .into_iter()
        .find(|record| record.key == key)
        .map(|record| &image[record.data]))
}

/// `shm_remove_var`: drops variable `key` by moving the later records down (the bytes past the
/// new end are left as they were, as PHP leaves them). Returns whether it was there.
pub fn remove(image: &mut [u8], key: i64) -> Result<bool, StoreError> {
    let segment_len = image.len();
    remove_of(image, segment_len, key)
}

/// [`remove`] on the first bytes of a segment of `segment_len` bytes.
pub fn remove_of(image: &mut [u8], segment_len: usize, key: i64) -> Result<bool, StoreError> {
    let mut header = header_of(image, segment_len)?;
    let Some(record) = records_of(image, segment_len)?
        .into_iter()
        .find(|r| r.key == key)
    else {
        return Ok(false);
    };
    let end = header.end as usize;
    image.copy_within(record.offset + record.size..end, record.offset);
    header.end -= record.size as i64;
    header.free += record.size as i64;
    write_i64(image, 16, header.end);
    write_i64(image, 24, header.free);
    Ok(true)
}

/// `shm_put_var` with already-serialized bytes: replaces variable `key`, appending it at the end.
///
/// Unlike PHP, which drops the old value before finding that the new one does not fit, a value
/// that does not fit leaves the store unchanged.
pub fn put(image: &mut [u8], key: i64, serialized: &[u8]) -> Result<(), StoreError> {
    let segment_len = image.len();
    put_of(image, segment_len, key, serialized)
}

/// [`put`] on the first bytes of a segment of `segment_len` bytes; `image` must reach
/// [`prefix_len`] with `record_size(serialized.len())` extra bytes.
pub fn put_of(
    image: &mut [u8],
    segment_len: usize,
    key: i64,
    serialized: &[u8],
) -> Result<(), StoreError> {
    let header = header_of(image, segment_len)?;
    let size = record_size(serialized.len());
    let reclaimable = records_of(image, segment_len)?
        .iter()
        .find(|r| r.key == key)
        .map_or(0, |r| r.size);
    let free = header.free as usize + reclaimable;
    if size > free {
        return Err(StoreError::NoSpace { needed: size, free });
    }
    remove_of(image, segment_len, key)?;
    let mut header = header_of(image, segment_len)?;
    let at = header.end as usize;
    if at + size > image.len() {
        return corrupt(format!(
            "the {size}-byte record at {at} lies past the {} bytes copied",
            image.len()
        ));
    }
    write_i64(image, at, key);
    write_i64(image, at + 8, serialized.len() as i64);
    write_i64(image, at + 16, size as i64);
    image[at + RECORD_HEADER_LEN..at + RECORD_HEADER_LEN + serialized.len()]
        .copy_from_slice(serialized);
    header.end += size as i64;
    header.free -= size as i64;
    write_i64(image, 16, header.end);
    write_i64(image, 24, header.free);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::php::{Value, serialize};
    use proptest::prelude::*;

    const BLOG: &str = "Hello from Writer: Shared Memory";

    fn fresh(total: usize) -> Vec<u8> {
        let mut image = vec![0; total];
        initialize(&mut image, total).unwrap();
        image
    }

    #[test]
    fn the_blog_put_gives_phps_bytes() {
        let mut image = fresh(1024);
        let data = serialize(&Value::String(BLOG.into()));
        put(&mut image, 1, &data).unwrap();
        assert_eq!(
            header(&image).unwrap(),
            Header {
                start: 40,
                end: 112,
                free: 912,
                total: 1024
            }
        );
        let mut expected = vec![0u8; 1024];
        expected[..7].copy_from_slice(MAGIC);
        for (at, v) in [
            (8, 40i64),
            (16, 112),
            (24, 912),
            (32, 1024),
            (40, 1),
            (48, 40),
            (56, 72),
        ] {
            expected[at..at + 8].copy_from_slice(&v.to_le_bytes());
        }
        expected[64..104].copy_from_slice(&data);
        assert_eq!(image, expected);
        assert_eq!(get(&image, 1).unwrap(), Some(&data[..]));
        assert_eq!(get(&image, 2).unwrap(), None);
    }

    #[test]
    fn replace_and_remove_move_later_records_down() {
        let mut image = fresh(1024);
        put(&mut image, 1, b"i:1;").unwrap();
        put(&mut image, 2, b"i:2;").unwrap();
        put(&mut image, 1, b"i:3;").unwrap();
        let keys: Vec<i64> = records(&image).unwrap().iter().map(|r| r.key).collect();
        assert_eq!(keys, [2, 1]);
        assert_eq!(get(&image, 1).unwrap(), Some(&b"i:3;"[..]));
        assert!(remove(&mut image, 2).unwrap());
        assert!(!remove(&mut image, 2).unwrap());
        assert_eq!(header(&image).unwrap().end, 40 + record_size(4) as i64);
    }

    #[test]
    fn capacity_is_phps() {
        assert_eq!(max_string_len(1024), 943);
        let mut image = fresh(1024);
        let fits = serialize(&Value::String(vec![b'x'; 943]));
        put(&mut image, 1, &fits).unwrap();
        let mut image = fresh(1024);
        let too_big = serialize(&Value::String(vec![b'x'; 944]));
        assert_eq!(
            put(&mut image, 1, &too_big),
            Err(StoreError::NoSpace {
                needed: 992,
                free: 984
            })
        );
    }

    #[test]
    fn a_failed_replace_keeps_the_old_value() {
        let mut image = fresh(200);
        put(&mut image, 1, b"i:1;").unwrap();
        put(&mut image, 2, b"i:2;").unwrap();
        let before = image.clone();
        assert!(matches!(
            put(&mut image, 1, &[b'x'; 200]),
            Err(StoreError::NoSpace { .. })
        ));
        assert_eq!(image, before);
    }

    #[test]
    fn hostile_headers_and_records_are_errors() {
        assert_eq!(header(&[0; 64]), Err(StoreError::NotInitialized));
        assert!(header(&[0; 8]).is_err());
        let mut image = fresh(128);
        put(&mut image, 1, b"i:1;").unwrap();
        let mut bad_end = image.clone();
        write_i64(&mut bad_end, 16, 4096);
        assert!(matches!(header(&bad_end), Err(StoreError::Corrupt(_))));
        let mut bad_next = image.clone();
        write_i64(&mut bad_next, 56, 0);
        assert!(matches!(get(&bad_next, 7), Err(StoreError::Corrupt(_))));
        let mut bad_len = image.clone();
        write_i64(&mut bad_len, 48, -1);
        assert!(matches!(get(&bad_len, 1), Err(StoreError::Corrupt(_))));
        write_i64(&mut bad_len, 48, 1 << 40);
        assert!(matches!(get(&bad_len, 1), Err(StoreError::Corrupt(_))));
    }

    proptest! {
        #[test]
        fn arbitrary_images_never_panic(mut image in proptest::collection::vec(any::<u8>(), 0..512), key in any::<i64>()) {
            if image.len() >= 7 && key % 2 == 0 {
                image[..7].copy_from_slice(MAGIC);
            }
            let _ = get(&image, key);
            let _ = remove(&mut image, key);
            let _ = put(&mut image, key, b"N;");
        }

        #[test]
        fn puts_keep_the_store_consistent(ops in proptest::collection::vec((0i64..4, proptest::option::of(0usize..100)), 0..40)) {
            let mut image = fresh(1024);
            let mut model = std::collections::BTreeMap::new();
            for (key, op) in ops {
                match op {
                    Some(len) => {
                        let data = vec![b'a' + key as u8; len];
                        if put(&mut image, key, &data).is_ok() {
                            model.insert(key, data);
                        }
                    }
                    None => {
                        prop_assert_eq!(remove(&mut image, key).unwrap(), model.remove(&key).is_some());
                    }
                }
                for k in 0..4 {
                    prop_assert_eq!(get(&image, k).unwrap(), model.get(&k).map(|v| &v[..]));
                }
            }
        }
    }
}
