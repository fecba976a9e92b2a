// Package browser holds the headless-Chromium test of the live view
// (GET /audit/ui): a nested module, so that chromedp never enters the root
// go.mod. Run it with
//
//	cd internal/testpeers/browser && go test ./...
//
// It needs chromium (Debian: apt-get install -y chromium; or set
// SLOGAUDIT_CHROMIUM to the browser's path). Without it the test skips,
// except under CI=true, where it fails.
package browser
