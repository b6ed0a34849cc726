// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

interface ICurve {
    function buy(uint256 minTokensOut, uint256 deadline) external payable returns (uint256);
    function sell(uint256 tokensIn, uint256 minNativeOut, uint256 deadline) external returns (uint256);
    function claimCreatorFees() external returns (uint256);
    function claimPlatformFees() external returns (uint256);
}

/// @title Test-only trader that re-enters its curve from receive().
/// @notice `mode` picks what receive() tries when the curve pays it: 1 buy, 2 sell,
///         3 claimCreatorFees, 4 claimPlatformFees (0: nothing). The re-entry's revert data
///         is caught and kept in `reentryError` (and the attempt counted), so the outer call
///         completes and a test can read what the curve answered.
contract ReentrantTrader {
    ICurve public immutable curve;
    uint8 public mode;
    uint256 public attempts;
    bytes public reentryError;
    bool public reentrySucceeded;

    constructor(ICurve curve_) {
        curve = curve_;
    }

    function setMode(uint8 mode_) external {
        mode = mode_;
    }

    function buy() external payable {
        curve.buy{value: msg.value}(0, type(uint40).max);
    }

    function sell(uint256 tokensIn) external {
        curve.sell(tokensIn, 0, type(uint40).max);
    }

    function claimCreatorFees() external {
        curve.claimCreatorFees();
    }

    function claimPlatformFees() external {
        curve.claimPlatformFees();
    }

    receive() external payable {
        if (mode == 0 || attempts > 0) return;
        attempts += 1;
        bool ok;
        bytes memory reason;
        if (mode == 1) {
            (ok, reason) = address(curve).call{value: 1 gwei}(abi.encodeCall(ICurve.buy, (0, type(uint40).max)));
        } else if (mode == 2) {
            (ok, reason) = address(curve).call(abi.encodeCall(ICurve.sell, (1, 0, type(uint40).max)));
        } else if (mode == 3) {
            (ok, reason) = address(curve).call(abi.encodeCall(ICurve.claimCreatorFees, ()));
        } else {
            (ok, reason) = address(curve).call(abi.encodeCall(ICurve.claimPlatformFees, ()));
        }
        reentrySucceeded = ok;
        reentryError = reason;
    }
}
