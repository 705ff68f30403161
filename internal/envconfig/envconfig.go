// Package envconfig loads a command's configuration from ALLSPARK_*
// variables through an injected getenv, with errors that name the
// variable an operator sets rather than the Go field behind it.
package envconfig

import (
	"errors"
	"fmt"
	"reflect"

	"github.com/caarlos0/env/v11"
)

// Prefix is the prefix of every AllSpark variable.
const Prefix = "ALLSPARK_"

// Load fills cfg (a pointer to a struct with env tags) from getenv.
func Load(cfg any, getenv func(string) string) error {
	opts := env.Options{Prefix: Prefix}
	params, err := env.GetFieldParamsWithOptions(cfg, opts)
	if err != nil {
		return fmt.Errorf("read config fields: %w", err)
	}
	opts.Environment = map[string]string{}
	for _, p := range params {
		if v := getenv(p.Key); v != "" {
			opts.Environment[p.Key] = v
		}
	}
	if err := env.ParseWithOptions(cfg, opts); err != nil {
		return nameVariables(reflect.TypeOf(cfg).Elem(), opts.Environment, err)
	}
	return nil
}

// nameVariables rewrites env's errors, which name Go fields, to name the
// variable and the value it was given. env.ParseError has no Unwrap, so
// its cause is taken from its Err field.
func nameVariables(t reflect.Type, values map[string]string, err error) error {
	var agg env.AggregateError
	if !errors.As(err, &agg) {
		return err
	}
	var out []error
	for _, e := range agg.Errors {
		var pe env.ParseError
		if errors.As(e, &pe) {
			key := Prefix + envKey(t, pe.Name)
			out = append(out, fmt.Errorf("%s=%q: cannot parse as %s: %w", key, values[key], pe.Type, pe.Err))
			continue
		}
		out = append(out, e)
	}
	return errors.Join(out...)
}

// envKey finds the env tag of the field named field, in t or its nested structs.
func envKey(t reflect.Type, field string) string {
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Type.Kind() == reflect.Struct && f.Tag.Get("env") == "" {
			if k := envKey(f.Type, field); k != field {
				return k
			}
			continue
		}
		if f.Name == field {
			return f.Tag.Get("env")
		}
	}
	return field
}
