package main

import (
	"fmt"
	"image/color"
	"path/filepath"
	"slices"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// The plot files, written into the output directory.
const (
	plotGrants     = "bench-grants.png"
	plotLateness   = "bench-lateness.png"
	plotThroughput = "bench-throughput.png"
)

// grantsSpan is how much of an accuracy run the grants plot shows.
const grantsSpan = 3 * time.Second

// lateFloor is where the lateness plot's log axis starts: lateness below
// it, early grants included, is drawn at it.
const lateFloor = time.Microsecond

// maxPoints is the most points a plotted curve keeps.
const maxPoints = 2000

// plotSize is every plot's width and height.
var plotSize = struct{ w, h vg.Length }{20 * vg.Centimeter, 12.5 * vg.Centimeter}

// writePlots draws the plots for the sections in res into dir and returns
// their file names, keyed by the constants above.
func writePlots(dir string, res results) (map[string]string, error) {
	plots := map[string]string{}
	type drawing struct {
		name string
		draw func() (*plot.Plot, error)
	}
	var ds []drawing
	if a := res.accuracy; a != nil {
		i := plotRateIndex(a.rates)
		ds = append(ds, drawing{plotGrants, func() (*plot.Plot, error) { return grantsPlot(a, i) }},
			drawing{plotLateness, func() (*plot.Plot, error) { return latenessPlot(a, i) }})
	}
	if t := res.throughput; t != nil {
		ds = append(ds, drawing{plotThroughput, func() (*plot.Plot, error) {
			return throughputPlot(t)
		}})
	}

	for _, d := range ds {
		p, err := d.draw()
		if err != nil {
			return nil, fmt.Errorf("plotting %s: %w", d.name, err)
		}
		if err := p.Save(plotSize.w, plotSize.h, filepath.Join(dir, d.name)); err != nil {
			return nil, fmt.Errorf("saving %s: %w", d.name, err)
		}
		plots[d.name] = d.name
	}

	return plots, nil
}

// plotRateIndex returns which rate the accuracy plots show: 1,000 per
// second if it ran, else the middle one.
func plotRateIndex(rates []int) int {
	if i := slices.Index(rates, 1000); i >= 0 {
		return i
	}

	return len(rates) / 2
}

// grantsPlot draws the units granted so far against time, for every
// limiter at rates[i], with the configured rate as a reference line.
func grantsPlot(a *accuracyResults, i int) (*plot.Plot, error) {
	r := a.rates[i]
	span := min(grantsSpan, a.duration)
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Units granted so far, %d per second, weighted mix", r)
	p.X.Label.Text = "time since the first request (s)"
	p.Y.Label.Text = "units granted"
	p.Legend.Top, p.Legend.Left = true, true

	for j, run := range a.runs[i] {
		var xys plotter.XYs
		cum := 0
		for _, g := range granted(run.at, run.amounts) {
			if g.at > span {
				break
			}
			xys = append(xys, plotter.XY{X: g.at.Seconds(), Y: float64(cum)})
			cum += g.amount
			xys = append(xys, plotter.XY{X: g.at.Seconds(), Y: float64(cum)})
		}
		if err := addLine(p, run.limiter, thin(xys), j); err != nil {
			return nil, err
		}
	}

	ref := plotter.XYs{{X: 0, Y: 0}, {X: span.Seconds(), Y: float64(r) * span.Seconds()}}
	l, err := plotter.NewLine(ref)
	if err != nil {
		return nil, err
	}
	l.Color = color.Gray{Y: 128}
	l.Dashes = []vg.Length{vg.Points(2), vg.Points(2)}
	p.Add(l)
	p.Legend.Add(fmt.Sprintf("rate × t (%d/s)", r), l)

	return p, nil
}

// latenessPlot draws, for every limiter at rates[i], the fraction of
// grants at most so late, on a log axis from lateFloor.
func latenessPlot(a *accuracyResults, i int) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Grant lateness against the exact schedule, %d per second",
		a.rates[i])
	p.X.Label.Text = "lateness (ms, log; early grants drawn at 0.001)"
	p.Y.Label.Text = "fraction of grants"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Legend.Top, p.Legend.Left = false, false // the empty corner: late and few

	for j, run := range a.runs[i] {
		late := run.lateSorts
		xys := make(plotter.XYs, len(late))
		for k, d := range late {
			xys[k] = plotter.XY{X: millis(max(d, lateFloor)), Y: float64(k+1) / float64(len(late))}
		}
		if err := addLine(p, run.limiter, thin(xys), j); err != nil {
			return nil, err
		}
	}

	return p, nil
}

// throughputPlot draws grants per second against goroutines for every
// goroutine peer, and the actor-to-actor figures as flat lines.
func throughputPlot(t *throughputResults) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = "Units granted per second (a limit nobody reaches)"
	p.X.Label.Text = "goroutines asking (log)"
	p.Y.Label.Text = "grants per second (log)"
	p.X.Scale, p.Y.Scale = plot.LogScale{}, plot.LogScale{}
	p.X.Tick.Marker, p.Y.Tick.Marker = plot.LogTicks{Prec: -1}, plot.LogTicks{Prec: -1}
	p.Legend.Top = true

	j := 0
	for _, peer := range goroutinePeers {
		xys := make(plotter.XYs, len(t.goroutines))
		for k, g := range t.goroutines {
			xys[k] = plotter.XY{X: float64(g), Y: t.byPeer[peer.name][k].perSecond()}
		}
		if err := addLine(p, peer.name, xys, j); err != nil {
			return nil, err
		}
		j++
	}
	lo, hi := float64(slices.Min(t.goroutines)), float64(slices.Max(t.goroutines))
	for _, name := range []string{actorDrip, actorRaw} {
		y := t.actors[name].perSecond()
		label := fmt.Sprintf("%s (one actor, %d in flight)", name, inFlight)
		if err := addLine(p, label, plotter.XYs{{X: lo, Y: y}, {X: hi, Y: y}}, j); err != nil {
			return nil, err
		}
		j++
	}

	// Room above the highest curve for the legend, which would hide it.
	p.Y.Max *= legendRoom

	return p, nil
}

// legendRoom is how far above its highest curve the throughput plot's
// axis goes, as a factor on its log scale.
const legendRoom = 40

// addLine adds xys to p as the j-th curve, with its own colour and dashes,
// and names it in the legend.
func addLine(p *plot.Plot, name string, xys plotter.XYs, j int) error {
	if len(xys) == 0 {
		return nil
	}
	l, err := plotter.NewLine(xys)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	l.Color = plotutil.Color(j)
	l.Dashes = plotutil.Dashes(j)
	l.Width = vg.Points(1.5)
	p.Add(l)
	p.Legend.Add(name, l)

	return nil
}

// thin keeps at most maxPoints of xys, evenly spread, with the last one.
func thin(xys plotter.XYs) plotter.XYs {
	if len(xys) <= maxPoints {
		return xys
	}
	out := make(plotter.XYs, 0, maxPoints+1)
	step := float64(len(xys)) / maxPoints
	for k := 0.0; int(k) < len(xys); k += step {
		out = append(out, xys[int(k)])
	}

	return append(out, xys[len(xys)-1])
}

// millis returns d in milliseconds.
func millis(d time.Duration) float64 {
	return float64(d) / float64(time.Millisecond)
}
