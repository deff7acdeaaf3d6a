-- Column names and types the export's query returns, without reading data ($query: its SQL file
-- from include/sql/, values bound). The closing parenthesis is on a line of its own.
DESCRIBE ($query
)
