package sqlite

import (
	"testing"

	"github.com/hutong-pay/hutong/internal/store/storetest"
)

func TestCustomers(t *testing.T) {
	storetest.RunCustomers(t, func(t *testing.T) storetest.CustomerStore { return openTest(t, Options{}) })
}
