#!/usr/bin/env python3
# How far any online expert-cache policy can go on the synthetic traces of
# bench/experts-policies.sh: a policy that knew the generator's exact
# next-use probability of every expert (its true popularity ranking and its
# recency window) and kept the most probable ones, admitting only on a miss
# ("bayes-admit") or swapping freely every token ("bayes-free", each swap a
# slow-tier read), against LRU, static placement and Belady's OPT on the same
# traces. No trace file carries the generator's state, so this script
# re-draws traces with the same law as lib/experts/synth.c (Zipf popularity
# over a ranking with random swaps, each choice reusing with probability
# `locality` an expert of the last 8 tokens); they are not the same draws.
# 128 experts top-8, 32 slots (25 %), one layer (layers are independent).
#   bench/experts-online-bound.py [TOKENS]
import random, math, sys
N, K, S, W = 128, 8, 32, 8
def gen(T, zipf, loc, drift, seed):
    rnd = random.Random(seed)
    w = [ (r+1)**-zipf for r in range(N)]; tot=sum(w); p=[x/tot for x in w]
    cdf=[]; a=0
    for x in p: a+=x; cdf.append(a)
    rank=list(range(N)); rnd.shuffle(rank)
    recent=[]; out=[]; probs=[]
    import bisect
    for t in range(T):
        d=drift
        while d>0:
            if d<1 and rnd.random()>=d: break
            i,j=rnd.randrange(N),rnd.randrange(N); rank[i],rank[j]=rank[j],rank[i]; d-=1
        # next-use probability per expert for one choice (ignoring without-replacement)
        pr=[0.0]*N
        for r in range(N): pr[rank[r]]+=(1-loc if recent else 1)*p[r]
        if recent:
            for e in recent: pr[e]+=loc/len(recent)
        probs.append(pr)
        ex=[]
        for j in range(K):
            e=-1; tries=0
            while tries<16 and e<0 and recent and rnd.random()<loc:
                c=recent[rnd.randrange(len(recent))]; tries+=1
                if c not in ex: e=c
            while e<0:
                c=rank[min(bisect.bisect_left(cdf, rnd.random()),N-1)]
                if c not in ex: e=c
            ex.append(e)
        out.append(ex)
        recent=(recent+ex)[-W*K:]
    return out, probs
def lru(tr, S):
    c={}; h=u=0
    for t,ex in enumerate(tr):
        miss=[]
        for e in ex:
            u+=1
            if e in c: h+=1
            else: miss.append(e)
            c[e]=t
        for e in miss:
            if len(c)>S:
                v=min((x for x in c if x not in ex), key=lambda x:c[x]); del c[v]
    return h/u
def static(tr,S):
    from collections import Counter
    cnt=Counter(e for ex in tr for e in ex); top=set(e for e,_ in cnt.most_common(S))
    return sum(e in top for ex in tr for e in ex)/(len(tr)*K)
def opt(tr,S):
    nxt=[]; last={}
    for t in range(len(tr)-1,-1,-1):
        nxt.append({e:last.get(e,10**9) for e in tr[t]})
        for e in tr[t]: last[e]=t
    nxt.reverse()
    c={}; h=u=0
    for t,ex in enumerate(tr):
        for e in ex:
            u+=1
            if e in c: h+=1
        for e in ex: c[e]=nxt[t][e]
        while len(c)>S:
            v=max(c, key=lambda x:c[x]); del c[v]
    return h/u
def bayes(tr,probs,S,free):
    # free: hold the S most probable experts every token (prefetches: each change is a slow read)
    c=set(); h=u=0; reads=0
    for t,ex in enumerate(tr):
        pr=probs[t]
        if free:
            want=set(sorted(range(N), key=lambda e:-pr[e])[:S]); reads+=len(want-c); c=want
        for e in ex:
            u+=1
            if e in c: h+=1
        if not free:
            # admit a miss only over the least probable cached expert, by the next token's probabilities
            pn=probs[t+1] if t+1<len(probs) else pr
            for e in ex:
                if e in c: continue
                if len(c)<S: c.add(e); continue
                v=min(c, key=lambda x:pn[x])
                if pn[e]>pn[v]: c.remove(v); c.add(e)
    return h/u, reads/len(tr)
T = int(sys.argv[1]) if len(sys.argv) > 1 else 1500
print("| zipf | locality | LRU-64 | LRU-32 | static | OPT | bayes-admit | bayes-free | bayes-admit vs static | bayes-free vs static |")
print("|---|---|---|---|---|---|---|---|---|---|")
for zipf, loc in [(0, 0.36), (0.3, 0.31), (0.5, 0.21)]:
    rs = []
    for seed in range(3):
        tr, probs = gen(T, zipf, loc, 0.2, seed)
        rs.append((lru(tr, 64), lru(tr, S), static(tr, S), opt(tr, S), *bayes(tr, probs, S, False), *bayes(tr, probs, S, True)))
    m = [sum(x) / len(x) for x in zip(*rs)]
    # slow-tier bytes with fused admission: misses (and, swapping freely, the swaps' reads) per token
    st = (1 - m[2]) * K
    print(f"| {zipf} | {loc} | {100*m[0]:.1f} % | {100*m[1]:.1f} % | {100*m[2]:.1f} % | {100*m[3]:.1f} % | "
          f"{100*m[4]:.1f} % | {100*m[6]:.1f} % | {(1-m[4])*K/st:.2f}x | {((1-m[6])*K+m[7])/st:.2f}x |")
