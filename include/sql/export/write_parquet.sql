-- The export's query written to S3 by ClickHouse itself as Parquet, one file per {bp_rows} rows.
-- Every value is a bound parameter (URL, format, row count); $keys is empty (the server's own
-- credentials) or the bound parameters of the connection's keys; $query is the export's SQL file
-- from include/sql/, its values bound too. The query starts on a line of its own and nothing
-- follows it on its last line, so a comment there cannot swallow the statement.
INSERT INTO FUNCTION s3({bp_url:String}$keys, {bp_format:String})
PARTITION BY intDiv(rowNumberInAllBlocks(), {bp_rows:UInt64})
$query
