//! Forecasting for Alkasba Lake: pure computation on daily series, no I/O.
//!
//! * [`models`]: the candidate models (seasonal naive, Holt-Winters with a weekly season,
//!   MSTL + ETS from `augurs`, Croston for intermittent demand).
//! * [`backtest`]: the rolling-origin backtest that scores them (MASE, sMAPE, interval
//!   coverage), picks one per series and gives calibrated 80% / 95% intervals.
//! * [`calendar`]: the Moroccan retail calendar (White Friday, Ramadan, the Eids) and the
//!   effects of its windows learnt from the history.
//! * [`stockout`]: the day the stock on hand runs out at the forecast pace.
//!
//! The job that reads the lake and writes the forecast tables is `alkasba_batch::forecast`.

pub mod backtest;
pub mod calendar;
mod error;
pub mod many;
pub mod models;
pub mod stockout;

pub use backtest::{Calendar, Config, Day, Kind, Outcome, Score, Source, forecast};
pub use calendar::Effects;
pub use error::{Error, Result};
pub use many::{Role, Series, forecast_many};
pub use models::Model;
