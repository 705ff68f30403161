package push

import (
	"bytes"
	"encoding/json"
	"fmt"
	"text/template"
)

// Template renders a notification's title and body with text/template.
// The data: .SrcID (the sender as the recipient sees it), .Count (messages
// collapsed into this notification), .Payload (the first message's payload,
// decoded: for {"text":"hi"} use {{.Payload.text}}), .DestSessionID.
type Template struct {
	Title *template.Template
	Body  *template.Template
}

// Defaults: a generic title, and a body that names the sender and counts.
const (
	DefaultTitle = "New message"
	DefaultBody  = `{{if gt .Count 1}}{{.Count}} new messages{{else}}New message{{end}}{{if .SrcID}} from {{.SrcID}}{{end}}`
)

// ParseTemplate compiles title and body ("" takes the default).
func ParseTemplate(title, body string) (Template, error) {
	if title == "" {
		title = DefaultTitle
	}
	if body == "" {
		body = DefaultBody
	}
	t, err := template.New("title").Option("missingkey=zero").Parse(title)
	if err != nil {
		return Template{}, fmt.Errorf("ALLSPARK_PUSH_TITLE: %w", err)
	}
	b, err := template.New("body").Option("missingkey=zero").Parse(body)
	if err != nil {
		return Template{}, fmt.Errorf("ALLSPARK_PUSH_BODY: %w", err)
	}
	return Template{Title: t, Body: b}, nil
}

type templateData struct {
	SrcID         string
	DestSessionID string
	Count         int
	Payload       any
}

// render fills title and body; a template that fails at run time (say the
// payload lacks a field it indexes) falls back to the generic text.
func (t Template) render(frame json.RawMessage, count int) (string, string) {
	var m struct {
		SrcID         string          `json:"src_id"`
		DestSessionID string          `json:"dest_session_id"`
		Payload       json.RawMessage `json:"payload"`
	}
	_ = json.Unmarshal(frame, &m)
	d := templateData{SrcID: m.SrcID, DestSessionID: m.DestSessionID, Count: count}
	_ = json.Unmarshal(m.Payload, &d.Payload)
	exec := func(tt *template.Template, fallback string) string {
		var b bytes.Buffer
		if err := tt.Execute(&b, d); err != nil || b.Len() == 0 {
			return fallback
		}
		return b.String()
	}
	return exec(t.Title, DefaultTitle), exec(t.Body, DefaultTitle)
}
