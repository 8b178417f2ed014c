//! Integration tests of stepup-tower: one binary, modules inside.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::print_stdout,
    missing_docs,
    unreachable_pub,
    missing_debug_implementations
)]

mod answers;
mod attacks;
mod cache;
mod dpop;
mod grpc;
mod interop;
mod jwks_server;
#[cfg(feature = "metrics")]
mod observe;
mod remote;
mod support;
mod token_types;
