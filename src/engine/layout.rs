//! The guest-physical memory map, I/O port map and interrupt lines of a vmux VM.
//!
//! Everything a guest can see at a fixed address is named here, once: the boot code, the ACPI
//! tables (which describe these addresses to the guest), the devices that claim them, and the
//! guest kit (`docs/platform.md` restates this table for guest authors). Change an address here
//! and in `docs/platform.md` together.

/// Guest-physical address of the boot GDT (null, null, code64 = 0x10, data = 0x18, tss = 0x20).
pub const BOOT_GDT_START: u64 = 0x500;
/// Guest-physical address of the (empty) boot IDT, just after the five-entry GDT (0x500..0x528).
pub const BOOT_IDT_START: u64 = 0x530;
/// The Linux zero page (`struct boot_params`), handed to the kernel/guest in RSI.
pub const ZERO_PAGE_START: u64 = 0x7000;
/// Initial stack pointer of the boot vCPU (grows down from below the page tables).
pub const BOOT_STACK_POINTER: u64 = 0x8ff0;
/// Identity-map page tables: PML4 here, one PDPT at +0x1000, four page directories after it
/// mapping 0..4 GiB with 2 MiB pages.
pub const PML4_START: u64 = 0x9000;
/// Page-directory-pointer table (one, covering 0..512 GiB; entries 0..3 used).
pub const PDPTE_START: u64 = 0xa000;
/// First of four page directories (0..1, 1..2, 2..3, 3..4 GiB).
pub const PDE_START: u64 = 0xb000;
/// Kernel command line, NUL terminated.
pub const CMDLINE_START: u64 = 0x2_0000;
/// Longest command line accepted, including the NUL (Linux x86 `COMMAND_LINE_SIZE`).
pub const CMDLINE_MAX_SIZE: usize = 2048;
/// Start of the extended BIOS data area; usable low RAM ends here.
pub const EBDA_START: u64 = 0x9_fc00;
/// Start of the BIOS area; ACPI tables live between here and 1 MiB (reserved in e820).
pub const BIOS_START: u64 = 0xe_0000;
/// Where the RSDP is written (the guest finds it by scanning 0xe0000..0xfffff).
pub const RSDP_START: u64 = 0xe_0000;
/// End (exclusive) of the area the ACPI tables may occupy.
pub const ACPI_TABLES_END: u64 = 0x10_0000;
/// Kernels and guest-kit programs are loaded at 1 MiB.
pub const HIGH_RAM_START: u64 = 0x10_0000;

/// Start of the 32-bit MMIO hole: guest RAM stops here and resumes at 4 GiB.
pub const MMIO_HOLE_START: u64 = 0xc000_0000;
/// 32-bit PCI MMIO window (BARs), inside the hole.
pub const PCI_MMIO_START: u64 = 0xc000_0000;
/// Size of the 32-bit PCI MMIO window.
pub const PCI_MMIO_SIZE: u64 = 0x2000_0000;
/// PCI Express ECAM (MMCONFIG) base, bus 0 only.
pub const PCI_ECAM_START: u64 = 0xe000_0000;
/// ECAM size: 1 MiB covers one bus (32 devices x 8 functions x 4 KiB).
pub const PCI_ECAM_SIZE: u64 = 0x10_0000;
/// PCI slot (device number on bus 0) of the memory balloon: the last one, so disks and NICs
/// keep their slots and hot-added disks (lowest free slot first) are not pushed along.
pub const BALLOON_SLOT: u8 = 31;
/// IOAPIC MMIO base (KVM's in-kernel IOAPIC).
pub const IOAPIC_START: u64 = 0xfec0_0000;
/// Local APIC MMIO base.
pub const LAPIC_START: u64 = 0xfee0_0000;
/// KVM's three-page TSS region (`KVM_SET_TSS_ADDR`), inside the hole.
pub const KVM_TSS_START: u64 = 0xfffb_d000;
/// KVM's identity-map page (`KVM_SET_IDENTITY_MAP_ADDR`), just below the TSS.
pub const KVM_IDENTITY_MAP_START: u64 = 0xfffb_c000;
/// End of the 32-bit address space: RAM above the hole continues here.
pub const MMIO_HOLE_END: u64 = 0x1_0000_0000;

/// COM1 16550 UART base port (8 ports).
pub const COM1_PORT: u16 = 0x3f8;
/// COM1 interrupt line (ISA IRQ, same GSI).
pub const COM1_GSI: u32 = 4;
/// i8042 data port (keyboard controller; only reset is implemented).
pub const I8042_DATA_PORT: u16 = 0x60;
/// i8042 command port: writing 0xfe resets the machine.
pub const I8042_COMMAND_PORT: u16 = 0x64;
/// ACPI sleep control register (FADT `SLEEP_CONTROL_REG`, 1 byte): SLP_EN (bit 5) with
/// SLP_TYP (bits 2..4) = 5 powers off (S5).
pub const ACPI_SLEEP_CONTROL_PORT: u16 = 0x600;
/// ACPI sleep status register (FADT `SLEEP_STATUS_REG`, 1 byte).
pub const ACPI_SLEEP_STATUS_PORT: u16 = 0x601;
/// ACPI reset register (FADT `RESET_REG`, 1 byte): writing [`ACPI_RESET_VALUE`] reboots.
pub const ACPI_RESET_PORT: u16 = 0x602;
/// Value the guest writes to [`ACPI_RESET_PORT`] to reset.
pub const ACPI_RESET_VALUE: u8 = 0x01;
/// SLP_TYP value for S5 (soft off), as advertised in the DSDT `_S5_` package.
pub const ACPI_S5_SLP_TYP: u8 = 5;
/// Generic Event Device event register (4 bytes, read-to-clear bitmask of pending events).
pub const GED_PORT: u16 = 0x610;
/// Size of the GED register block in ports.
pub const GED_PORT_SIZE: u16 = 4;
/// The GED's interrupt line (edge, active high).
pub const GED_GSI: u32 = 5;
/// GED event bit: CPU hotplug (scan `\_SB.CPUS`).
pub const GED_EVENT_CPU_HOTPLUG: u32 = 1 << 1;
/// GED event bit: PCI hotplug (scan the root bridge slots).
pub const GED_EVENT_PCI_HOTPLUG: u32 = 1 << 2;
/// GED event bit: power button pressed (`Notify(\_SB.PWRB, 0x80)`).
pub const GED_EVENT_POWER_BUTTON: u32 = 1 << 3;
/// CPU hotplug register block (reserved for the hotplug work; 12 ports).
pub const CPU_HOTPLUG_PORT: u16 = 0x620;
/// PCI hotplug register block (reserved for the hotplug work; 16 ports).
pub const PCI_HOTPLUG_PORT: u16 = 0x640;
/// Debug-exit port, compatible with QEMU's `isa-debug-exit,iobase=0xf4,iosize=4`: a write of
/// value `v` ends the VM with exit status `(v << 1) | 1`. Used by benchmarks and the guest kit.
pub const DEBUG_EXIT_PORT: u16 = 0xf4;
/// PCI configuration address/data ports (0xcf8..0xcff).
pub const PCI_CONFIG_PORT: u16 = 0xcf8;

/// Number of IOAPIC pins (GSIs 0..23).
pub const IOAPIC_PINS: u32 = 24;
/// Largest number of vCPUs a VM may have (APIC ids 0..=254 fit in xAPIC mode).
pub const MAX_VCPUS: u32 = 254;
