//! PHP's formats.
