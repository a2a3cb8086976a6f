//! `flood`: serial throughput. Prints 80-byte lines as fast as it can: `flood <n> ` (n from 1)
//! padded with the pattern `0123456789abcdefghijklmnopqrstuvwxyz` (repeated, starting at its
//! first character) to 78 bytes, then CR LF. Forever, or with `lines=<N>` on the command line
//! for N lines followed by debug exit 0.

#![no_std]
#![no_main]

#[path = "kit/mod.rs"]
mod kit;

use kit::console::Ascii;

const LINE_LEN: usize = 80;
const PATTERN: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";

fn guest_main(boot: &kit::boot::BootInfo) -> ! {
    let limit = match boot.arg("lines") {
        None => None,
        Some(text) => match kit::boot::parse_u64(text) {
            Some(n) => Some(n),
            None => {
                println!("flood: lines={} is not a number", Ascii(text));
                kit::power::debug_exit(kit::power::EXIT_FAILURE)
            }
        },
    };
    let mut line = [0u8; LINE_LEN];
    line[LINE_LEN - 2] = b'\r';
    line[LINE_LEN - 1] = b'\n';
    let mut n: u64 = 1;
    while limit.is_none_or(|limit| n <= limit) {
        let mut digits = [0; 20];
        let text = b"flood "
            .iter()
            .chain(kit::console::dec_digits(n, &mut digits))
            .chain(b" ")
            .chain(PATTERN.iter().cycle());
        for (slot, &byte) in line[..LINE_LEN - 2].iter_mut().zip(text) {
            *slot = byte;
        }
        kit::console::write_bytes(&line);
        n += 1;
    }
    kit::power::debug_exit(kit::power::EXIT_OK)
}
