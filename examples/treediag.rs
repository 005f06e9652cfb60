use hearsay::gossip::PeerId;
use hearsay::sim::{Sim, SimConfig};
use std::time::Duration;
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let loss: f64 = args[1].parse().unwrap();
    let events: usize = args[2].parse().unwrap();
    let n = 1000;
    let mut cfg = SimConfig::new(n, events, loss, 7);
    cfg.settle = Duration::from_secs(3);
    cfg.rate = args.get(3).map_or(100.0, |r| r.parse().unwrap());
    let mut sim = Sim::new(cfg).unwrap();
    let end = sim.end();
    sim.run_until(end);
    let mut eager_dir = 0; let mut sym = 0; let mut asym = 0; let mut lazy_e = 0;
    let mut adj = vec![vec![]; n];
    for i in 0..n { let node = sim.node(i).unwrap();
        for p in node.eager_peers() { eager_dir += 1; let j = p.0 as usize;
            match sim.node(j).unwrap().link(PeerId(i as u64)) { Some(hearsay::gossip::tree::Link::Eager) => { sym += 1; adj[i].push(j);} Some(_) => { lazy_e += 1; }, None => asym += 1 } }
    }
    // components over symmetric eager edges
    let mut seen = vec![false; n]; let mut comps = 0; let mut sizes = vec![];
    for s in 0..n { if seen[s] { continue; } comps += 1; let mut st = vec![s]; seen[s] = true; let mut sz = 0;
        while let Some(x) = st.pop() { sz += 1; for &y in &adj[x] { if !seen[y] { seen[y] = true; st.push(y); } } } sizes.push(sz); }
    sizes.sort(); sizes.reverse();
    let deg: Vec<usize> = (0..n).map(|i| sim.node(i).unwrap().eager_peers().len() + sim.node(i).unwrap().lazy_peers().len()).collect();
    println!("directed eager {eager_dir} symmetric-eager-pairs {} eager->lazy {lazy_e} eager->none {asym} components {comps} sizes {:?} avg active {}", sym/2, &sizes[..sizes.len().min(8)], deg.iter().sum::<usize>() as f64 / n as f64);
    let r = sim.report(Duration::ZERO);
    println!("hop {} p50 {} grafts {} prunes {}", r.last_delivery_hop_max, r.time_to_all_p50_ms, r.grafts, r.prunes);
}
