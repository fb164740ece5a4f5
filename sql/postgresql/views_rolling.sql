-- views_rolling.sql: rolling views over call_counts, tuned by the settings
-- table (PostgreSQL); installed after views.sql, as it is.

-- The call_counts rows of the windows that overlap the last recent_hours
-- hours before the watermark (final_watermark, as is_final
-- uses): window_end > watermark - N hours and window_start < watermark.
-- Empty while there is no watermark. Scalar subqueries, so the planner
-- can push both bounds down to window_counts.
CREATE VIEW recent_call_counts AS
SELECT window_spec, window_start, window_end, crime_type, calls, late_calls,
       is_final
FROM call_counts
WHERE window_start < (SELECT watermark FROM final_watermark)
  AND window_end > (SELECT watermark FROM final_watermark) - make_interval(
          hours => (SELECT value::integer FROM settings
                    WHERE name = 'recent_hours'));

-- Per window spec and window, the crime types ranked by calls (1 the most;
-- ties share a rank and the next rank is skipped, as RANK() does), ranks 1
-- to top_n: a tie at the last rank can give more than top_n rows.
CREATE VIEW top_crime_types AS
SELECT window_spec, window_start, window_end, crime_rank, crime_type, calls,
       is_final
FROM (SELECT window_spec, window_start, window_end, crime_type, calls,
             is_final,
             RANK() OVER (PARTITION BY window_spec, window_start
                          ORDER BY calls DESC) AS crime_rank
      FROM call_counts) AS ranked
WHERE crime_rank <= (SELECT value::integer FROM settings
                     WHERE name = 'top_n');
