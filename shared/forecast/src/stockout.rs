//! When the stock on hand runs out at the forecast pace.

/// The day (1 = the day after the last known day) on which the cumulative forecast demand
/// reaches `stock`: the last day the shelf is not empty. `Some(0)` when there is no stock now;
/// `None` when the stock outlasts the forecast.
pub fn stockout_day(point: &[f64], stock: f64) -> Option<usize> {
    if stock <= 0.0 {
        return Some(0);
    }
    let mut sold = 0.0;
    point
        .iter()
        .position(|units| {
            sold += units;
            sold >= stock
        })
        .map(|i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::stockout_day;

    #[test]
    fn the_day_cumulative_demand_reaches_the_stock() {
        assert_eq!(stockout_day(&[2.0, 2.0, 2.0, 2.0], 5.0), Some(3));
        assert_eq!(stockout_day(&[2.0, 2.0, 2.0, 2.0], 4.0), Some(2));
        assert_eq!(stockout_day(&[2.0, 2.0], 5.0), None);
        assert_eq!(stockout_day(&[2.0], 0.0), Some(0));
        assert_eq!(stockout_day(&[0.0; 28], 1.0), None);
    }
}
