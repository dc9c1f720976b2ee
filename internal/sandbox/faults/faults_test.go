package faults

import (
	"context"
	"math"
	"testing"
)

func TestValidateRejectsOutOfRange(t *testing.T) {
	bad := []Settings{
		{Notifications: NotificationFaults{DropRate: 1.5}},
		{Notifications: NotificationFaults{ForgedRate: -0.1}},
		{API: APIFaults{ErrorRate: math.NaN()}},
		{API: APIFaults{LatencyMS: -1}},
		{Notifications: NotificationFaults{DelayMS: 1 << 30}},
	}
	f := New()
	for i, s := range bad {
		if err := f.Set(s); err == nil {
			t.Errorf("case %d: Set(%+v) = nil, want error", i, s)
		}
	}
	if got := f.Settings(); got != (Settings{}) {
		t.Fatalf("settings changed by rejected Set: %+v", got)
	}
}

func TestRollExtremesAndAPI(t *testing.T) {
	f := New()
	for range 100 {
		if f.Roll(0) {
			t.Fatal("Roll(0) = true")
		}
		if !f.Roll(1) {
			t.Fatal("Roll(1) = false")
		}
	}
	hits := 0
	for range 10000 {
		if f.Roll(0.3) {
			hits++
		}
	}
	if hits < 2500 || hits > 3500 {
		t.Fatalf("Roll(0.3) hit %d of 10000, want about 3000", hits)
	}
	if f.API(context.Background()) {
		t.Fatal("API failed with faults off")
	}
	if err := f.Set(Settings{API: APIFaults{ErrorRate: 1}}); err != nil {
		t.Fatal(err)
	}
	if !f.API(context.Background()) {
		t.Fatal("API did not fail with error_rate 1")
	}
}
