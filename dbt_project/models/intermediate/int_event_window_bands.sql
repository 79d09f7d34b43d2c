{{
    config(
        materialized='view',
    )
}}

{#- Each window with the band its rule allows and whether it left it (kind 'spike' or 'drop').
    threshold rules: the band is [min_events, alert_threshold], either side optional. baseline
    rules: the learned band [q50 - k_down * sigma_down, q50 + k_up * sigma_up] on the sides the
    direction watches (k_up: the sensitivity's, or var baseline_surprise_factor times the event's
    typical daily largest z, int_event_daily_surprise, whichever is larger), narrowed by min_events and alert_threshold; while learning (fewer than
    var baseline_min_history_days days of history), only the static sides. sigma is the larger of
    the quantile spread ((q95 - q50) / 1.645 up, (q50 - q05) / 1.645 down) and Poisson noise
    (sqrt(q50), at least 1), so 3 -> 9 events is no surprise while 3 -> 60 is. A window under
    var baseline_drop_fraction_of_q05 of the 5% quantile is a drop too: a bursty event's wide
    spread puts q50 - k_down * sigma_down below 0, yet its falling silent is an outage. Bounds are whole
    counts (a count is above x exactly when it is above floor(x)); a learned lower bound below 0
    is 0: no drop is possible then. A drop needs a complete window (every minute known) that
    ended before drops_judged_before: var drop_settle_minutes before the current minute (whose
    events are still arriving), or before the newest data collected if that is earlier.
    burst_bound (baseline rules watching up): q50 + baseline_k_burst * sigma_up, the lower bar of
    repeated bursts (models/marts/anomalies.sql). -#}

{{ window_bands() }}
