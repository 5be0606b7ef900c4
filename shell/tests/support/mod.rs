//! Helpers of the app's end-to-end test.

pub mod webdriver;
