//! The Moroccan retail calendar: the days whose demand a weekly model cannot see coming, and
//! their effects learnt from the history.
//!
//! Each event day belongs to one named window (White Friday week, the last ten days of Ramadan,
//! Eid...). Where a window occurred in the history, its effect is the median, over its days, of
//! the day's value against a baseline of the same weekday in the weeks around it that were no
//! event; the history is divided by the effects before a model is fitted, and the forecast
//! multiplied by them on the event days ahead. A window never seen in the history has no effect
//! (1): a first White Friday is not guessed at.
//!
//! The dates: White Friday is computed (the day after the fourth Thursday of November); the two
//! Eids follow the lunar calendar, as announced in Morocco, listed here until 2028. Extend
//! [`EID_AL_FITR`] and [`EID_AL_ADHA`] as years are announced.

use chrono::{Datelike, Duration, NaiveDate};

/// Eid al-Fitr in Morocco (Ramadan is the 29 days before).
pub const EID_AL_FITR: [(i32, u32, u32); 6] = [(2023, 4, 21), (2024, 4, 10), (2025, 3, 31), (2026, 3, 20), (2027, 3, 10), (2028, 2, 27)];
/// Eid al-Adha in Morocco.
pub const EID_AL_ADHA: [(i32, u32, u32); 6] = [(2023, 6, 29), (2024, 6, 17), (2025, 6, 7), (2026, 5, 27), (2027, 5, 17), (2028, 5, 5)];

/// A window of the calendar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Window {
    /// Monday to Thursday before White Friday.
    WhiteFridayWeek,
    WhiteFriday,
    /// The weekend after.
    WhiteFridayWeekend,
    CyberMonday,
    /// Ramadan up to its last ten days.
    Ramadan,
    RamadanLastTen,
    /// Eid al-Fitr and the day after.
    EidAlFitr,
    /// The week before Eid al-Adha.
    BeforeEidAlAdha,
    /// Eid al-Adha and the day after.
    EidAlAdha,
}

const WINDOWS: usize = 9;

impl Window {
    fn index(self) -> usize {
        self as usize
    }
}

/// White Friday of `year`: the day after the fourth Thursday of November.
pub fn white_friday(year: i32) -> NaiveDate {
    let first = NaiveDate::from_ymd_opt(year, 11, 1).unwrap_or_default();
    let to_thursday = (3 + 7 - first.weekday().num_days_from_monday() as i64) % 7;
    first + Duration::days(to_thursday + 22)
}

/// Days from the nearest date of `table` to `day` (negative: before it).
fn nearest(table: &[(i32, u32, u32)], day: NaiveDate) -> Option<i64> {
    table.iter().filter_map(|(y, m, d)| NaiveDate::from_ymd_opt(*y, *m, *d)).map(|e| (day - e).num_days()).min_by_key(|d| d.abs())
}

/// The window `day` falls in, if any (White Friday first, then Eid al-Fitr, then Eid al-Adha).
pub fn window(day: NaiveDate) -> Option<Window> {
    let wf = match (day - white_friday(day.year())).num_days() {
        -4..=-1 => Some(Window::WhiteFridayWeek),
        0 => Some(Window::WhiteFriday),
        1..=2 => Some(Window::WhiteFridayWeekend),
        3 => Some(Window::CyberMonday),
        _ => None,
    };
    let fitr = match nearest(&EID_AL_FITR, day) {
        Some(-29..=-11) => Some(Window::Ramadan),
        Some(-10..=-1) => Some(Window::RamadanLastTen),
        Some(0..=1) => Some(Window::EidAlFitr),
        _ => None,
    };
    let adha = match nearest(&EID_AL_ADHA, day) {
        Some(-7..=-1) => Some(Window::BeforeEidAlAdha),
        Some(0..=1) => Some(Window::EidAlAdha),
        _ => None,
    };
    wf.or(fitr).or(adha)
}

/// Learnt effects: a multiplier per window (1 where the history never saw it).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Effects([f64; WINDOWS]);

impl Default for Effects {
    fn default() -> Self {
        Self([1.0; WINDOWS])
    }
}

impl Effects {
    /// The multiplier of `day`.
    pub fn on(&self, day: NaiveDate) -> f64 {
        window(day).map_or(1.0, |w| self.0[w.index()])
    }

    /// Whether any window has an effect.
    pub fn any(&self) -> bool {
        self.0.iter().any(|e| *e != 1.0)
    }

    /// Learns the effects from `y` (daily, from `start`). A window's effect is the median over
    /// its days of value / baseline, where the baseline is the mean of the same weekday one and
    /// two weeks before and after that fall in no window; days with a baseline of zero are
    /// skipped. Effects are kept within [0.2, 5] and ignored when within 5% of 1.
    pub fn learn(y: &[f64], start: NaiveDate) -> Self {
        let mut ratios: [Vec<f64>; WINDOWS] = Default::default();
        let day = |i: usize| start + Duration::days(i as i64);
        let plain: Vec<bool> = (0..y.len()).map(|i| window(day(i)).is_none()).collect();
        for (i, v) in y.iter().enumerate() {
            let Some(w) = window(day(i)) else { continue };
            let around: Vec<f64> = [-14i64, -7, 7, 14].iter().filter_map(|o| usize::try_from(i as i64 + o).ok()).filter(|j| *j < y.len() && plain[*j]).map(|j| y[j]).collect();
            if around.len() < 2 {
                continue;
            }
            let base = around.iter().sum::<f64>() / around.len() as f64;
            if base > 0.0 {
                ratios[w.index()].push(v / base);
            }
        }
        let mut effects = [1.0; WINDOWS];
        for (e, mut r) in effects.iter_mut().zip(ratios) {
            if r.is_empty() {
                continue;
            }
            r.sort_by(f64::total_cmp);
            let m = r[r.len() / 2];
            if (m - 1.0).abs() > 0.05 {
                *e = m.clamp(0.2, 5.0);
            }
        }
        Self(effects)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn windows_fall_on_the_right_days() {
        assert_eq!(white_friday(2025), d("2025-11-28"));
        assert_eq!(white_friday(2026), d("2026-11-27"));
        assert_eq!(window(d("2026-11-27")), Some(Window::WhiteFriday));
        assert_eq!(window(d("2026-11-23")), Some(Window::WhiteFridayWeek));
        assert_eq!(window(d("2026-11-30")), Some(Window::CyberMonday));
        assert_eq!(window(d("2026-03-19")), Some(Window::RamadanLastTen));
        assert_eq!(window(d("2026-03-20")), Some(Window::EidAlFitr));
        assert_eq!(window(d("2026-02-25")), Some(Window::Ramadan));
        assert_eq!(window(d("2026-05-27")), Some(Window::EidAlAdha));
        assert_eq!(window(d("2026-10-14")), None);
    }

    #[test]
    fn effects_are_learnt_from_the_days_around() {
        let start = d("2025-11-01");
        let mut y = vec![100.0; 120];
        let wf = (d("2025-11-28") - start).num_days() as usize;
        y[wf] = 300.0;
        let e = Effects::learn(&y, start);
        assert_eq!(e.on(d("2025-11-28")), 3.0);
        assert_eq!(e.on(d("2026-11-27")), 3.0, "the same window a year later");
        assert_eq!(e.on(d("2025-11-24")), 1.0, "within 5%: no effect");
        assert_eq!(e.on(d("2026-03-20")), 1.0, "never seen: no effect");
    }
}
