//go:build race

package chaos

// raceEnabled: the services are built with the race detector too, so that
// they reuse the packages this test binary was compiled from (and a data
// race in them ends the run).
const raceEnabled = true
