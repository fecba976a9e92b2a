module github.com/slogaudit/slogaudit/internal/testpeers/browser

go 1.26.0

require (
	github.com/chromedp/chromedp v0.23.0
	github.com/slogaudit/slogaudit v0.0.0
)

require (
	github.com/chromedp/cdproto v0.159.0 // indirect
	github.com/go-json-experiment/json v0.0.0-20260213210345-44df1a37e875 // indirect
	golang.org/x/mod v0.43.0 // indirect
)

// The browser test drives the example of this very repository.
replace github.com/slogaudit/slogaudit => ../../..
