package kel

// KeyState is the state of an identifier after the last event of its KEL.
// Its JSON form is the "state" object of the registry's state.json.
type KeyState struct {
	Prefix                    string    `json:"prefix"`
	CurrentKeys               []string  `json:"current_keys"`
	NextCommitment            []string  `json:"next_commitment"`
	Sequence                  uint64    `json:"sequence"`
	LastEventSAID             string    `json:"last_event_said"`
	IsAbandoned               bool      `json:"is_abandoned"`
	Threshold                 Threshold `json:"threshold"`
	NextThreshold             Threshold `json:"next_threshold"`
	Backers                   []string  `json:"backers"`
	BackerThreshold           Threshold `json:"backer_threshold"`
	ConfigTraits              []string  `json:"config_traits"`
	IsNonTransferable         bool      `json:"is_non_transferable"`
	Delegator                 *string   `json:"delegator"`
	LastEstablishmentSequence uint64    `json:"last_establishment_sequence"`
}

// HasTrait reports whether the identifier was incepted with a config trait.
func (s *KeyState) HasTrait(trait string) bool {
	for _, t := range s.ConfigTraits {
		if t == trait {
			return true
		}
	}
	return false
}

// Clone returns a deep copy of the state.
func (s *KeyState) Clone() *KeyState {
	c := *s
	c.CurrentKeys = append([]string{}, s.CurrentKeys...)
	c.NextCommitment = append([]string{}, s.NextCommitment...)
	c.Backers = append([]string{}, s.Backers...)
	c.ConfigTraits = append([]string{}, s.ConfigTraits...)
	if s.Delegator != nil {
		d := *s.Delegator
		c.Delegator = &d
	}
	return &c
}

// KeyIndex returns the position of a key (qb64) in the current key list, or
// -1.
func (s *KeyState) KeyIndex(key string) int {
	for i, k := range s.CurrentKeys {
		if k == key {
			return i
		}
	}
	return -1
}
