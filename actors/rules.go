package actors

import (
	"fmt"
	"path"

	"google.golang.org/protobuf/proto"

	"github.com/dripsched/drip/messages"
)

// Rules maps keys to limits, for a registry: exact keys first, then
// patterns in order (the first that matches wins), then the default, if
// there is one. A Rules is read-only once made, so it is safe to share.
type Rules struct {
	exact    map[string]*messages.Limit
	patterns []Pattern
	fallback *messages.Limit // nil: a key nothing matches is unknown
}

// Pattern is one pattern rule: the limit of every key that Match matches,
// in path.Match syntax ("*.github.com", "tenant-?").
type Pattern struct {
	Match string
	Limit *messages.Limit
}

// NewRules validates a rule table and returns it. Every limit is checked
// with CheckLimit and every pattern with path.Match; the first error names
// the key or pattern and the value, and wraps path.ErrBadPattern for a bad
// pattern. The limits are copied, so changing them later changes nothing.
// fallback may be nil.
func NewRules(exact map[string]*messages.Limit, patterns []Pattern,
	fallback *messages.Limit) (*Rules, error) {
	r := &Rules{exact: make(map[string]*messages.Limit, len(exact))}
	for key, l := range exact {
		if key == "" {
			return nil, fmt.Errorf("a rule has an empty key")
		}
		if err := CheckLimit(l); err != nil {
			return nil, fmt.Errorf("key %q: %v", key, err)
		}
		r.exact[key] = cloneLimit(l)
	}

	for _, p := range patterns {
		if _, err := path.Match(p.Match, ""); err != nil {
			return nil, fmt.Errorf("pattern %q: %w", p.Match, err)
		}
		if err := CheckLimit(p.Limit); err != nil {
			return nil, fmt.Errorf("pattern %q: %v", p.Match, err)
		}
		r.patterns = append(r.patterns, Pattern{p.Match, cloneLimit(p.Limit)})
	}

	if fallback != nil {
		if err := CheckLimit(fallback); err != nil {
			return nil, fmt.Errorf("default rule: %v", err)
		}
		r.fallback = cloneLimit(fallback)
	}

	return r, nil
}

// Lookup returns the limit for key, and false if no rule matches it. The
// limit is shared: do not modify it.
func (r *Rules) Lookup(key string) (*messages.Limit, bool) {
	if l, ok := r.exact[key]; ok {
		return l, true
	}
	for _, p := range r.patterns {
		// NewRules checked every pattern, so Match cannot fail here.
		if ok, _ := path.Match(p.Match, key); ok {
			return p.Limit, true
		}
	}

	return r.fallback, r.fallback != nil
}

func cloneLimit(l *messages.Limit) *messages.Limit {
	return proto.Clone(l).(*messages.Limit)
}
