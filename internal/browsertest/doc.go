// Package browsertest holds Hutong's browser tests: real headless Chromium, driven through the
// DevTools protocol by chromedp, buys and pays against the whole demo stack (gateway, hosted
// checkout, both wallet sandboxes' payer pages, the example shop) running in-process.
//
// Chromium comes from $HUTONG_CHROMIUM or the PATH ("chromium"); scripts/test.sh installs it.
// Without it the tests fail, unless HUTONG_SKIP_BROWSER=1. When a test fails, a screenshot of
// every tab goes to $HUTONG_ARTIFACTS (or a fresh temporary folder), and the test logs where.
package browsertest
