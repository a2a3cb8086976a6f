//! Printing: `print!`/`println!` over COM1, and the number and byte-string wrappers to print
//! with.
//!
//! The precompiled `core` is built with SSE, and its integer and padded-string formatting
//! (`Formatter::pad_integral`, `Formatter::pad`) contain SSE instructions, which the guest must
//! not have. So programs format numbers with [`Dec`] and [`Hex`] and text with [`Ascii`], all of
//! which write through `Formatter::write_str` and get compiled here without SSE; a literal
//! `{}` of an integer or `&str` would drag the SSE code in (the build test's objdump check
//! catches it). Newlines are sent as CR LF, as a terminal expects.

use crate::kit::serial::{self, UART, Uart};
use core::fmt;

/// `core::fmt::Write` over the locked UART, turning `\n` into `\r\n`.
pub struct Console<'a> {
    uart: &'a mut Uart,
}

impl fmt::Write for Console<'_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        for &byte in text.as_bytes() {
            if byte == b'\n' {
                self.uart.put(b'\r');
            }
            self.uart.put(byte);
        }
        Ok(())
    }
}

/// Prints formatted text with the output lock held (used by the macros).
pub fn print_args(args: fmt::Arguments<'_>) {
    let mut uart = UART.lock();
    let _ = fmt::Write::write_fmt(&mut Console { uart: &mut uart }, args);
}

/// Prints a string as it is (with `\n` sent as CR LF), without going through `format_args!`:
/// `{}` of a `&str` would use `Formatter::pad`, which is SSE code.
pub fn print_str(text: &str) {
    let mut uart = UART.lock();
    let _ = fmt::Write::write_str(&mut Console { uart: &mut uart }, text);
}

/// Sends bytes exactly as given (no newline translation), with the output lock held.
pub fn write_bytes(bytes: &[u8]) {
    UART.lock().write(bytes);
}

/// Prints to COM1.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::kit::console::print_args(format_args!($($arg)*)) };
}

/// Prints to COM1, then a newline (CR LF).
#[macro_export]
macro_rules! println {
    () => { $crate::kit::console::print_args(format_args!("\n")) };
    ($($arg:tt)*) => {
        $crate::kit::console::print_args(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// Writes `text` (ASCII) through a formatter without `core`'s padding code.
fn put_ascii(f: &mut fmt::Formatter<'_>, text: &[u8]) -> fmt::Result {
    // Runs of printable ASCII go out as one `&str`; anything else becomes '?'.
    for (i, run) in text.split(|b| !(0x20..0x7f).contains(b)).enumerate() {
        if i > 0 {
            f.write_str("?")?;
        }
        put_run(f, run)?;
    }
    Ok(())
}

/// Writes the decimal digits of `value` into the end of `out`; returns them.
pub fn dec_digits(mut value: u64, out: &mut [u8; 20]) -> &[u8] {
    let mut used = 0;
    for slot in out.iter_mut().rev() {
        *slot = b'0' + (value % 10) as u8;
        value /= 10;
        used += 1;
        if value == 0 {
            break;
        }
    }
    out.get(out.len() - used..).unwrap_or(&[])
}

/// Writes the hex digits of `value` into the end of `out`; returns them.
pub fn hex_digits(mut value: u64, out: &mut [u8; 16]) -> &[u8] {
    let mut used = 0;
    for slot in out.iter_mut().rev() {
        *slot = b"0123456789abcdef"[(value & 0xf) as usize];
        value >>= 4;
        used += 1;
        if value == 0 {
            break;
        }
    }
    out.get(out.len() - used..).unwrap_or(&[])
}

fn put_run(f: &mut fmt::Formatter<'_>, run: &[u8]) -> fmt::Result {
    if run.is_empty() {
        return Ok(());
    }
    // SAFETY: callers pass printable ASCII only, which is valid UTF-8.
    f.write_str(unsafe { core::str::from_utf8_unchecked(run) })
}

/// An unsigned number printed in decimal.
#[derive(Clone, Copy)]
pub struct Dec(pub u64);

impl fmt::Display for Dec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        put_run(f, dec_digits(self.0, &mut [0; 20]))
    }
}

/// An unsigned number printed in decimal with leading zeros to at least `.1` digits.
#[derive(Clone, Copy)]
pub struct DecPadded(pub u64, pub usize);

impl fmt::Display for DecPadded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = dec_digits(self.0, &mut [0; 20]).len();
        for _ in digits..self.1 {
            f.write_str("0")?;
        }
        Dec(self.0).fmt(f)
    }
}

/// An unsigned number printed in lower-case hex with a `0x` prefix and no padding.
#[derive(Clone, Copy)]
pub struct Hex(pub u64);

impl fmt::Display for Hex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("0x")?;
        put_run(f, hex_digits(self.0, &mut [0; 16]))
    }
}

/// Bytes printed as ASCII text; bytes outside printable ASCII show as `?`.
#[derive(Clone, Copy)]
pub struct Ascii<'a>(pub &'a [u8]);

impl fmt::Display for Ascii<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        put_ascii(f, self.0)
    }
}

/// Prints without the lock: for the panic and exception paths only.
pub fn print_unlocked(args: fmt::Arguments<'_>) {
    struct Unlocked;
    impl fmt::Write for Unlocked {
        fn write_str(&mut self, text: &str) -> fmt::Result {
            for &byte in text.as_bytes() {
                if byte == b'\n' {
                    serial::write_unlocked(b"\r");
                }
                serial::write_unlocked(&[byte]);
            }
            Ok(())
        }
    }
    let _ = fmt::Write::write_fmt(&mut Unlocked, args);
}
