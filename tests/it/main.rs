//! The integration tests: one binary, one module per area, against the real `ftx` binary and the classroom Python programs.

mod batch;
mod batch_hostile;
mod check;
mod classroom;
mod cli;
mod delivery;
mod failures;
mod hello;
mod hostile;
mod interop;
mod live_view;
mod pool;
mod send_serve;
mod util;
