package edge

import (
	"fmt"
	"sort"
	"testing"
)

// update creates, changes in place and deletes entries; view and each see
// exactly what is stored.
func TestShardedMap(t *testing.T) {
	var m shardedMap[*[]int]
	m.init()
	add := func(key string, v int) {
		m.update(key, func(e *[]int, ok bool) (*[]int, bool) {
			if !ok {
				e = &[]int{}
			}
			*e = append(*e, v)
			return e, true
		})
	}
	for i := range 200 {
		add(fmt.Sprint(i%100), i)
	}
	var got []int
	m.view("7", func(e *[]int, ok bool) {
		if ok {
			got = append(got, *e...)
		}
	})
	if fmt.Sprint(got) != "[7 107]" {
		t.Fatalf("view 7: %v", got)
	}
	for i := range 50 { // delete keys 0..49
		m.update(fmt.Sprint(i), func(*[]int, bool) (*[]int, bool) { return nil, false })
	}
	m.update("absent", func(e *[]int, ok bool) (*[]int, bool) {
		if ok {
			t.Error("absent key reported present")
		}
		return nil, false
	})
	var keys []string
	m.each(func(k string, e *[]int) {
		if len(*e) != 2 {
			t.Errorf("key %s holds %v", k, *e)
		}
		keys = append(keys, k)
	})
	sort.Strings(keys)
	if len(keys) != 50 || keys[0] != "50" || keys[49] != "99" {
		t.Fatalf("each saw %d keys: %v", len(keys), keys)
	}
	m.view("3", func(_ *[]int, ok bool) {
		if ok {
			t.Error("deleted key still present")
		}
	})
}
