//! Satsuma's desktop app (Tauri 2): not built yet; a later issue fills this crate.
