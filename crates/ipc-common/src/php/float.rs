//! PHP's float-to-text conversion (`zend_gcvt`), in its two uses:
//! `serialize()` with `serialize_precision = -1` (the shortest digits that round-trip, 17 as the
//! point where E-notation starts) and `echo` with `precision = 14`.

/// `d:` payload of `serialize()`: `0.1`, `1.0E+17`, `-0`, `INF`.
pub(crate) fn serialize_repr(value: f64) -> String {
    // Rust's `{:e}` prints the shortest digits that round-trip, as zend_dtoa's mode 0 does.
    gcvt(value, &format!("{value:e}"), 17)
}

/// What `echo` prints for a float: 14 significant digits, correctly rounded.
pub(crate) fn echo_repr(value: f64) -> String {
    gcvt(value, &format!("{value:.13e}"), 14)
}

/// Lays out `digits × 10^exp` as `zend_gcvt(value, ndigit, '.', 'E')` does: plain notation while
/// the decimal point falls within `-3..=ndigit` digits, E-notation (`1.0E+17`, `1.5E-5`) outside.
fn gcvt(value: f64, scientific: &str, ndigit: i32) -> String {
    if value.is_nan() {
        return "NAN".into();
    }
    if value.is_infinite() {
        return if value < 0.0 { "-INF" } else { "INF" }.into();
    }
    let (mantissa, exponent) = scientific
        .split_once('e')
        .expect("Rust's {:e} output has an exponent");
    let negative = mantissa.starts_with('-');
    let mut digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    while digits.len() > 1 && digits.ends_with('0') {
        digits.pop();
    }
    // Where the decimal point goes, counted in digits from the left ("0.1" is "1" at 0).
    let decpt: i32 = exponent.parse::<i32>().expect("integer exponent") + 1;
    let mut out = String::with_capacity(digits.len() + 8);
    if negative {
        out.push('-');
    }
    if decpt < -3 || decpt > ndigit {
        let exp = decpt - 1;
        out.push_str(&digits[..1]);
        out.push('.');
        out.push_str(if digits.len() > 1 { &digits[1..] } else { "0" });
        out.push('E');
        out.push(if exp < 0 { '-' } else { '+' });
        out.push_str(&exp.unsigned_abs().to_string());
    } else if decpt <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', decpt.unsigned_abs() as usize));
        out.push_str(&digits);
    } else {
        let decpt = decpt as usize;
        if digits.len() <= decpt {
            out.push_str(&digits);
            out.extend(std::iter::repeat_n('0', decpt - digits.len()));
        } else {
            out.push_str(&digits[..decpt]);
            out.push('.');
            out.push_str(&digits[decpt..]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialize_matches_php() {
        let cases: &[(f64, &str)] = &[
            (0.1, "0.1"),
            (1.0, "1"),
            (-0.0, "-0"),
            (0.0, "0"),
            (2.5, "2.5"),
            (1e17, "1.0E+17"),
            (1e16, "10000000000000000"),
            (1e-5, "1.0E-5"),
            (0.0001, "0.0001"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1.0 / 3.0, "0.3333333333333333"),
            (-1.5e-7, "-1.5E-7"),
            (123456789012345678.0, "1.2345678901234568E+17"),
            (5e-324, "5.0E-324"),
            (f64::MAX, "1.7976931348623157E+308"),
            (f64::INFINITY, "INF"),
            (f64::NEG_INFINITY, "-INF"),
            (f64::NAN, "NAN"),
        ];
        for (value, php) in cases {
            assert_eq!(serialize_repr(*value), *php, "serialize({value:?})");
        }
    }

    #[test]
    fn echo_matches_php() {
        let cases: &[(f64, &str)] = &[
            (0.1 + 0.2, "0.3"),
            (1.0 / 3.0, "0.33333333333333"),
            (1e14, "1.0E+14"),
            (12345678901234.0, "12345678901234"),
            (1e15, "1.0E+15"),
            (2.5, "2.5"),
            (-0.0, "-0"),
            (0.00001, "1.0E-5"),
            (100.0, "100"),
        ];
        for (value, php) in cases {
            assert_eq!(echo_repr(*value), *php, "echo {value:?}");
        }
    }
}
