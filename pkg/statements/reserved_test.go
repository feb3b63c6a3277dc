package statements

import "testing"

func TestReservedName(t *testing.T) {
	t.Parallel()
	for _, sql := range []string{"delete from _tt_requests", `DROP TABLE "_TT_state"`, "select * from main._tt_state", "_tt_x"} {
		if CheckReserved(sql) == nil {
			t.Errorf("%q names teatree's bookkeeping and must be refused", sql)
		}
	}
	for _, sql := range []string{"update t set cache_ttl = 5", "select 'butt' as x", "select a_tt from t", "select $_tt"} {
		if CheckReserved(sql) != nil {
			t.Errorf("%q names nothing of teatree's and must be allowed", sql)
		}
	}
}
