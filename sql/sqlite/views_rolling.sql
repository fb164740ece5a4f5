-- views_rolling.sql: rolling views over call_counts, tuned by the settings
-- table (SQLite); recreated by every migrate, after views.sql.
DROP VIEW IF EXISTS recent_call_counts;
DROP VIEW IF EXISTS top_crime_types;

-- The call_counts rows of the windows that overlap the last recent_hours
-- hours before the watermark (final_watermark, as is_final
-- uses): window_end > watermark - N hours and window_start < watermark.
-- Empty while there is no watermark. Window bounds are whole seconds, so
-- the watermark's whole second less N hours gives the same answer as the
-- watermark itself; its '.ffffff' is cut off first so that the answer
-- never depends on how datetime() treats a fraction.
CREATE VIEW recent_call_counts AS
SELECT window_spec, window_start, window_end, crime_type, calls, late_calls,
       is_final
FROM call_counts
WHERE window_start < (SELECT watermark FROM final_watermark)
  AND window_end > datetime(
          substr((SELECT watermark FROM final_watermark), 1, 19),
          '-' || (SELECT value FROM settings WHERE name = 'recent_hours') ||
                  ' hours');

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
      FROM call_counts)
WHERE crime_rank <= (SELECT CAST(value AS INTEGER) FROM settings
                     WHERE name = 'top_n');
