-- One 0/1 answer per table: are all of its parts readable and checksums right?
CHECK TABLE $table SETTINGS check_query_single_value_result = 1
