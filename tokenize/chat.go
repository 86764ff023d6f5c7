package tokenize

import (
	"fmt"
	"strings"
)

// Special tokens of the Qwen2.5 chat format.
const (
	// EndOfText ends a document; Qwen2.5 base models stop on it.
	EndOfText = "<|endoftext|>"
	// IMStart opens a chat message: IMStart + role + "\n".
	IMStart = "<|im_start|>"
	// IMEnd closes a chat message; Qwen2.5-Instruct models stop on it.
	IMEnd = "<|im_end|>"
)

// DefaultSystemPrompt is the system message Qwen2.5-Instruct's chat template
// inserts when the conversation does not start with one.
const DefaultSystemPrompt = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."

// Message is one turn of a conversation. Role is "system", "user" or
// "assistant" (any other role is written the same way).
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// ChatTemplate says how a conversation becomes prompt text.
type ChatTemplate int

const (
	// ChatQwen is the Qwen2.5-Instruct chat template (without tools): each
	// message is "<|im_start|>{role}\n{content}<|im_end|>\n", preceded by
	// DefaultSystemPrompt as a system message when the first message is not
	// a system message.
	ChatQwen ChatTemplate = iota
	// ChatPlain is for base models: the messages' contents alone, joined by
	// "\n". With one user message, the prompt is that message's text.
	ChatPlain
)

// ParseChatTemplate reads a template name: "qwen" or "plain".
func ParseChatTemplate(name string) (ChatTemplate, error) {
	switch name {
	case "qwen", "chat":
		return ChatQwen, nil
	case "plain", "base", "none":
		return ChatPlain, nil
	}
	return 0, fmt.Errorf("chat template %q: want qwen or plain", name)
}

// String returns the template's name as ParseChatTemplate reads it.
func (c ChatTemplate) String() string {
	if c == ChatPlain {
		return "plain"
	}
	return "qwen"
}

// Format writes msgs as prompt text. With addGenerationPrompt, ChatQwen ends
// with "<|im_start|>assistant\n" so that the model writes the assistant's
// turn next; ChatPlain ignores it. Encode the result with Encode (not
// EncodeNoSpecial) so that the markers become their special tokens.
func (c ChatTemplate) Format(msgs []Message, addGenerationPrompt bool) string {
	var b strings.Builder
	if c == ChatPlain {
		for i, m := range msgs {
			if i > 0 {
				b.WriteByte('\n')
			}
			b.WriteString(m.Content)
		}
		return b.String()
	}
	if len(msgs) == 0 || msgs[0].Role != "system" {
		writeMessage(&b, "system", DefaultSystemPrompt)
	}
	for _, m := range msgs {
		writeMessage(&b, m.Role, m.Content)
	}
	if addGenerationPrompt {
		b.WriteString(IMStart + "assistant\n")
	}
	return b.String()
}

func writeMessage(b *strings.Builder, role, content string) {
	b.WriteString(IMStart)
	b.WriteString(role)
	b.WriteByte('\n')
	b.WriteString(content)
	b.WriteString(IMEnd + "\n")
}
