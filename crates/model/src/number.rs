//! DynamoDB's Number: a decimal of at most 38 significant digits with a magnitude between 1E-130 and
//! 9.99...E+125, or zero. Kept as `coefficient × 10^exponent` with trailing zeros stripped, so that
//! equal values have one representation and comparison, hashing and encoding never see floats.

use std::cmp::Ordering;
use std::fmt;

/// Most significant digits a Number may carry.
pub const MAX_DIGITS: u32 = 38;
/// Largest allowed scientific exponent (the position of the leading digit).
pub const MAX_EXPONENT: i32 = 125;
/// Smallest allowed scientific exponent.
pub const MIN_EXPONENT: i32 = -130;

/// A decimal number as DynamoDB stores it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Number {
    negative: bool,
    /// Significant digits without trailing zeros; 0 only for zero.
    coefficient: u128,
    /// Power of ten of the last significant digit.
    exponent: i32,
}

/// Why a string is not a storable Number; the messages are DynamoDB's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NumberError {
    NotANumber(String),
    TooManyDigits,
    Overflow,
    Underflow,
}

impl fmt::Display for NumberError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NumberError::NotANumber(text) => {
                write!(f, "The parameter cannot be converted to a numeric value: {text}")
            }
            NumberError::TooManyDigits => {
                f.write_str("Attempting to store more than 38 significant digits in a Number")
            }
            NumberError::Overflow => f.write_str(
                "Number overflow. Attempting to store a number with magnitude larger than supported range",
            ),
            NumberError::Underflow => f.write_str(
                "Number underflow. Attempting to store a number with magnitude smaller than supported range",
            ),
        }
    }
}

impl std::error::Error for NumberError {}

impl Number {
    pub const ZERO: Number = Number {
        negative: false,
        coefficient: 0,
        exponent: 0,
    };

    /// Parses DynamoDB's number syntax: `-?(digits[.digits]|.digits)([eE][+-]?digits)?`.
    pub fn parse(text: &str) -> Result<Number, NumberError> {
        let not_a_number = || NumberError::NotANumber(text.to_string());
        let bytes = text.as_bytes();
        let (negative, rest) = match bytes.first() {
            Some(b'-') => (true, &bytes[1..]),
            Some(b'+') => (false, &bytes[1..]),
            _ => (false, bytes),
        };
        let mantissa_end = rest
            .iter()
            .position(|b| *b == b'e' || *b == b'E')
            .unwrap_or(rest.len());
        let (mantissa, exponent_part) = rest.split_at(mantissa_end);
        let (int_part, frac_part) = match mantissa.iter().position(|b| *b == b'.') {
            Some(dot) => (&mantissa[..dot], &mantissa[dot + 1..]),
            None => (mantissa, &mantissa[..0]),
        };
        let all_digits = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
        if (int_part.is_empty() && frac_part.is_empty())
            || !all_digits(int_part)
            || !all_digits(frac_part)
        {
            return Err(not_a_number());
        }
        let written_exponent = if exponent_part.is_empty() {
            0i64
        } else {
            parse_exponent(&exponent_part[1..]).ok_or_else(not_a_number)?
        };
        let digits: Vec<u8> = int_part.iter().chain(frac_part).map(|b| b - b'0').collect();
        let first = digits.iter().position(|d| *d != 0);
        let Some(first) = first else {
            return Ok(Number::ZERO);
        };
        let last = digits.iter().rposition(|d| *d != 0).unwrap_or(first);
        let significant = &digits[first..=last];
        // Power of ten of the last significant digit.
        let exponent = written_exponent - frac_part.len() as i64 + (digits.len() - 1 - last) as i64;
        let scientific = exponent + significant.len() as i64 - 1;
        if scientific > MAX_EXPONENT as i64 {
            return Err(NumberError::Overflow);
        }
        if scientific < MIN_EXPONENT as i64 {
            return Err(NumberError::Underflow);
        }
        if significant.len() > MAX_DIGITS as usize {
            return Err(NumberError::TooManyDigits);
        }
        let coefficient = significant
            .iter()
            .fold(0u128, |acc, d| acc * 10 + *d as u128);
        Ok(Number {
            negative,
            coefficient,
            exponent: exponent as i32,
        })
    }

    /// Builds a number from parts, normalising trailing zeros and checking DynamoDB's limits.
    pub fn from_parts(
        negative: bool,
        mut coefficient: u128,
        mut exponent: i64,
    ) -> Result<Number, NumberError> {
        if coefficient == 0 {
            return Ok(Number::ZERO);
        }
        while coefficient.is_multiple_of(10) {
            coefficient /= 10;
            exponent += 1;
        }
        let digits = count_digits(coefficient);
        let scientific = exponent + digits as i64 - 1;
        if scientific > MAX_EXPONENT as i64 {
            return Err(NumberError::Overflow);
        }
        if scientific < MIN_EXPONENT as i64 {
            return Err(NumberError::Underflow);
        }
        if digits > MAX_DIGITS {
            return Err(NumberError::TooManyDigits);
        }
        Ok(Number {
            negative,
            coefficient,
            exponent: exponent as i32,
        })
    }

    pub fn is_zero(&self) -> bool {
        self.coefficient == 0
    }

    pub fn is_negative(&self) -> bool {
        self.negative
    }

    /// The significant digits (no leading or trailing zeros; `0` for zero).
    pub fn coefficient(&self) -> u128 {
        self.coefficient
    }

    /// Power of ten of the last significant digit.
    pub fn exponent(&self) -> i32 {
        self.exponent
    }

    /// Number of significant digits (0 for zero).
    pub fn digit_count(&self) -> u32 {
        if self.is_zero() {
            0
        } else {
            count_digits(self.coefficient)
        }
    }

    /// Power of ten of the leading digit, as in scientific notation.
    pub fn scientific_exponent(&self) -> i32 {
        self.exponent + self.digit_count() as i32 - 1
    }

    pub fn negate(self) -> Number {
        if self.is_zero() {
            self
        } else {
            Number {
                negative: !self.negative,
                ..self
            }
        }
    }

    /// Exact sum; an error when the result does not fit DynamoDB's Number.
    pub fn checked_add(self, other: Number) -> Result<Number, NumberError> {
        if self.is_zero() {
            return Ok(other);
        }
        if other.is_zero() {
            return Ok(self);
        }
        let exponent = self.exponent.min(other.exponent);
        // A coefficient that cannot be aligned has more than 38 digits once aligned, and so
        // does the sum, because the other operand is too short to cancel it.
        let align = |n: Number| -> Result<i128, NumberError> {
            let shift = (n.exponent - exponent) as u32;
            let scaled = 10u128
                .checked_pow(shift)
                .and_then(|p| n.coefficient.checked_mul(p))
                .filter(|v| *v <= i128::MAX as u128)
                .ok_or(if n.scientific_exponent() > MAX_EXPONENT {
                    NumberError::Overflow
                } else {
                    NumberError::TooManyDigits
                })?;
            Ok(if n.negative {
                -(scaled as i128)
            } else {
                scaled as i128
            })
        };
        let sum = align(self)?
            .checked_add(align(other)?)
            .ok_or(NumberError::TooManyDigits)?;
        // DynamoDB judges an arithmetic result's precision before its magnitude.
        let mut significant = sum.unsigned_abs();
        while significant != 0 && significant.is_multiple_of(10) {
            significant /= 10;
        }
        if count_digits(significant) > MAX_DIGITS {
            return Err(NumberError::TooManyDigits);
        }
        Number::from_parts(sum < 0, sum.unsigned_abs(), exponent as i64)
    }

    pub fn checked_sub(self, other: Number) -> Result<Number, NumberError> {
        self.checked_add(other.negate())
    }

    fn cmp_magnitude(&self, other: &Number) -> Ordering {
        match (self.is_zero(), other.is_zero()) {
            (true, true) => return Ordering::Equal,
            (true, false) => return Ordering::Less,
            (false, true) => return Ordering::Greater,
            _ => {}
        }
        self.scientific_exponent()
            .cmp(&other.scientific_exponent())
            .then_with(|| {
                let (a, b) = (self.digit_count(), other.digit_count());
                let width = a.max(b);
                let pad = |c: u128, d: u32| c * 10u128.pow(width - d);
                pad(self.coefficient, a).cmp(&pad(other.coefficient, b))
            })
    }
}

fn parse_exponent(text: &[u8]) -> Option<i64> {
    let (negative, digits) = match text.first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    // Exponents beyond this bound over- or underflow whatever the digits are.
    let value = digits.iter().fold(0i64, |acc, d| {
        (acc * 10 + (d - b'0') as i64).min(1_000_000_000)
    });
    Some(if negative { -value } else { value })
}

fn count_digits(mut value: u128) -> u32 {
    let mut digits = 1;
    while value >= 10 {
        value /= 10;
        digits += 1;
    }
    digits
}

impl Ord for Number {
    fn cmp(&self, other: &Number) -> Ordering {
        match (self.negative, other.negative) {
            (false, true) => Ordering::Greater,
            (true, false) => Ordering::Less,
            (false, false) => self.cmp_magnitude(other),
            (true, true) => other.cmp_magnitude(self),
        }
    }
}

impl PartialOrd for Number {
    fn partial_cmp(&self, other: &Number) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Plain notation without exponent, as DynamoDB returns numbers: `1E+3` prints `1000`, `0.50` prints `0.5`.
impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_zero() {
            return f.write_str("0");
        }
        let digits = self.coefficient.to_string();
        let mut out = String::with_capacity(digits.len() + 8);
        if self.negative {
            out.push('-');
        }
        if self.exponent >= 0 {
            out.push_str(&digits);
            out.extend(std::iter::repeat_n('0', self.exponent as usize));
        } else {
            let fraction_len = (-self.exponent) as usize;
            if digits.len() > fraction_len {
                let (int, frac) = digits.split_at(digits.len() - fraction_len);
                out.push_str(int);
                out.push('.');
                out.push_str(frac);
            } else {
                out.push_str("0.");
                out.extend(std::iter::repeat_n('0', fraction_len - digits.len()));
                out.push_str(&digits);
            }
        }
        f.write_str(&out)
    }
}

impl fmt::Debug for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Number({self})")
    }
}

impl std::str::FromStr for Number {
    type Err = NumberError;
    fn from_str(s: &str) -> Result<Number, NumberError> {
        Number::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Number {
        Number::parse(s).unwrap()
    }

    #[test]
    fn canonical_form_strips_zeros_and_exponents() {
        for (input, canonical) in [
            ("0", "0"),
            ("-0", "0"),
            ("007", "7"),
            ("1e3", "1000"),
            ("1E+3", "1000"),
            ("0.50", "0.5"),
            ("-12.340e1", "-123.4"),
            ("1e-5", "0.00001"),
            (".5", "0.5"),
            ("5.", "5"),
            (
                "123456789012345678901234567890123456780000",
                "123456789012345678901234567890123456780000",
            ),
        ] {
            assert_eq!(n(input).to_string(), canonical, "{input}");
        }
    }

    #[test]
    fn rejects_what_dynamodb_rejects() {
        for bad in [
            "", "-", "abc", "1e", "1.2.3", "e5", " 1", "1 ", "0x10", "1e+", "--1", "Infinity",
            "NaN",
        ] {
            assert!(
                matches!(Number::parse(bad), Err(NumberError::NotANumber(_))),
                "{bad:?}"
            );
        }
        assert_eq!(Number::parse("1e126"), Err(NumberError::Overflow));
        assert_eq!(Number::parse("1e-131"), Err(NumberError::Underflow));
        assert_eq!(
            Number::parse("123456789012345678901234567890123456789"),
            Err(NumberError::TooManyDigits)
        );
        assert!(Number::parse("9.9999999999999999999999999999999999999e125").is_ok());
        assert!(Number::parse("1e-130").is_ok());
    }

    #[test]
    fn orders_numerically() {
        let sorted = [
            "-1e10", "-12", "-1.5", "-0.001", "0", "0.001", "1", "1.5", "12", "1e10",
        ];
        for pair in sorted.windows(2) {
            assert!(n(pair[0]) < n(pair[1]), "{} < {}", pair[0], pair[1]);
        }
        assert_eq!(n("1.0"), n("1"));
    }

    #[test]
    fn adds_exactly() {
        assert_eq!(n("0.1").checked_add(n("0.2")).unwrap(), n("0.3"));
        assert_eq!(n("5").checked_sub(n("7")).unwrap(), n("-2"));
        assert_eq!(n("1e125").checked_sub(n("1e125")).unwrap(), Number::ZERO);
        assert_eq!(
            n("1e38").checked_add(n("1")),
            Err(NumberError::TooManyDigits)
        );
        // Both too large and too precise: DynamoDB Local reports the precision.
        assert_eq!(
            n("9.9999999999999999999999999999999999999e125").checked_add(n("1e125")),
            Err(NumberError::TooManyDigits)
        );
        assert_eq!(
            n("9e125").checked_add(n("1e125")),
            Err(NumberError::Overflow)
        );
    }
}
