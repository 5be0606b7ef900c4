//! Satsuma's selective forwarding unit: not built yet; the SFU issue fills this crate.
