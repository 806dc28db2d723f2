// engram.metrics(): the Prometheus text exposition (metrics_exposition.cpp)
// as one text value, for a scraper that runs SQL.
//
// Privileges: like engram.spaces and engram.memory_usage(), for pg_monitor
// (granted in SQL; the text reveals space names and sizes, not rows).
#include "pg/metrics_exposition.hpp"

ENGRAM_FUNCTION(engram_metrics)
{
	StringInfoData out;
	initStringInfo(&out);
	metrics_write_exposition(&out);
	PG_RETURN_TEXT_P(cstring_to_text_with_len(out.data, out.len));
}
