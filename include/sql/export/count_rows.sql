-- Rows the export's query returns ($query: its SQL file from include/sql/, values bound). The closing
-- parenthesis is on a line of its own: a comment on the query's last line cannot swallow it.
SELECT count() FROM ($query
)
