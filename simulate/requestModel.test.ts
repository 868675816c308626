import { DEFAULT_REQUEST_PROFILE, MAX_STRETCH, REQUEST_PROFILES, podRequests, requestProfileOf, requestStretch } from './requestModel.js';
import { LLM_WORKLOADS, WORKLOADS } from './generateTrace.js';

describe('the request model', () => {
  it('has a profile for every workload class the generator makes; others get the default', () => {
    for (const name of [...Object.keys(WORKLOADS), ...Object.keys(LLM_WORKLOADS), 'chat-deployment']) expect(requestProfileOf(name)).toBe(REQUEST_PROFILES[name]);
    expect(requestProfileOf('my-own')).toBe(DEFAULT_REQUEST_PROFILE);
    expect(requestProfileOf('constructor')).toBe(DEFAULT_REQUEST_PROFILE);
  });

  it('stretches a request by demand / supply, between 1 and the maximum', () => {
    expect(requestStretch(60, 45)).toBeCloseTo(60 / 45, 9);
    expect(requestStretch(20, 25)).toBe(1);
    expect(requestStretch(20, 0)).toBe(MAX_STRETCH);
    expect(requestStretch(100, 0.5)).toBe(MAX_STRETCH);
  });

  it('offers concurrency / serviceS requests per second at the asked share, serves what the supply allows', () => {
    // llm-8b: 8 in flight, 2.5 s each: 3.2 requests/s at a mean load of 40% for 100 s (4000 percent x s).
    const { offered, served, responseSeconds } = podRequests('llm-8b', 40, { demand: 4_000_000, supply: 3_000_000, stretchedDemand: 4_000_000 * (4 / 3) });
    expect(offered).toBeCloseTo(320, 9);
    expect(served).toBeCloseTo(240, 9);
    expect(responseSeconds / offered).toBeCloseTo(2.5 * (4 / 3), 9);
  });
});
