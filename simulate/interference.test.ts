import { mpsSupply, timeSlicedSupply, waterFill } from './interference.js';

const sum = (xs: number[]) => xs.reduce((s, x) => s + x, 0);

describe('waterFill', () => {
  it('gives everyone their cap when the capacity suffices', () => {
    expect(waterFill(100, [10, 20, 30])).toEqual([10, 20, 30]);
  });

  it('splits max-min fairly when it does not', () => {
    const shares = waterFill(100, [10, 80, 80]);
    expect(shares[0]).toBe(10);
    expect(shares[1]).toBeCloseTo(45, 10);
    expect(shares[2]).toBeCloseTo(45, 10);
    expect(sum(shares)).toBeCloseTo(100, 10);
  });

  it('gives each of n hungry pods capacity / n', () => {
    expect(waterFill(90, [100, 100, 100])).toEqual([30, 30, 30]);
  });
});

describe('mpsSupply', () => {
  it('caps a pod at its thread percentage even on an idle GPU', () => {
    expect(mpsSupply([{ demand: 40, threadPercent: 25, high: false }], true)).toEqual([25]);
  });

  it('serves high-priority clients first and lets low ones share the rest', () => {
    const supply = mpsSupply(
      [
        { demand: 60, threadPercent: 100, high: true },
        { demand: 30, threadPercent: 100, high: true },
        { demand: 50, threadPercent: 100, high: false },
      ],
      true,
    );
    expect(supply).toEqual([60, 30, 10]);
  });

  it('treats everyone alike without priorities', () => {
    const supply = mpsSupply(
      [
        { demand: 60, threadPercent: 100, high: true },
        { demand: 60, threadPercent: 100, high: false },
      ],
      false,
    );
    expect(supply).toEqual([50, 50]);
  });
});

describe('timeSlicedSupply', () => {
  it('loses the context-switch overhead only when two or more pods share', () => {
    expect(timeSlicedSupply([100], 0.1)).toEqual([100]);
    const shared = timeSlicedSupply([100, 100], 0.1);
    expect(shared[0]).toBeCloseTo(45, 10);
    expect(shared[1]).toBeCloseTo(45, 10);
  });

  it('leaves pods alone while their demands fit the remaining time', () => {
    expect(timeSlicedSupply([20, 30], 0.05)).toEqual([20, 30]);
  });
});
