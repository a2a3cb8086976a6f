//! Human sizes: `512M`, `1G`, `20GiB`, `1048576` (bytes) and back.

/// Parses a size with an optional binary suffix (K, M, G, T, with optional `i`/`B`;
/// all powers of 1024). A bare number is bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, suffix) = t.split_at(digits_end);
    if num.is_empty() {
        return Err(format!(
            "'{text}' is not a size; write it like 512M, 2G or 20GiB"
        ));
    }
    let value: u64 = num
        .parse()
        .map_err(|_| format!("'{text}' is too large a size"))?;
    let shift = match suffix.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        _ => {
            return Err(format!(
                "'{text}' has an unknown unit; use K, M, G or T (powers of 1024)"
            ));
        }
    };
    value
        .checked_mul(1u64 << shift)
        .ok_or_else(|| format!("'{text}' is too large a size"))
}

/// Formats bytes compactly with the largest exact binary unit (`256M`, `1G`, `1536K`),
/// falling back to one decimal (`1.5G`) when not exact.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [(u32, &str); 4] = [(40, "T"), (30, "G"), (20, "M"), (10, "K")];
    for (shift, unit) in UNITS {
        let scale = 1u64 << shift;
        if bytes >= scale {
            if bytes.is_multiple_of(scale) {
                return format!("{}{unit}", bytes / scale);
            }
            return format!("{:.1}{unit}", bytes as f64 / scale as f64);
        }
    }
    format!("{bytes}B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_binary_suffixes() {
        assert_eq!(parse_size("256M"), Ok(256 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("20GiB"), Ok(20 << 30));
        assert_eq!(parse_size("4096"), Ok(4096));
    }

    #[test]
    fn rejects_garbage_with_a_hint() {
        let err = parse_size("lots").expect_err("must fail");
        assert!(err.contains("512M"), "{err}");
        assert!(parse_size("5X").is_err());
        assert!(parse_size("99999999999T").is_err());
    }

    #[test]
    fn formats_round_trip() {
        assert_eq!(format_size(256 << 20), "256M");
        assert_eq!(format_size(3 << 29), "1.5G");
        assert_eq!(parse_size(&format_size(8 << 30)), Ok(8 << 30));
    }
}
